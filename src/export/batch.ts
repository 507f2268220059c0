// A symbolic batch dimension for exported models. cts-seg's IR is statically shaped (the sharing
// gathers use batch-dependent offsets and the reshapes fold the batch in), so rather than making
// every op batch-generic, the batch-1 graph becomes the body of an ONNX Loop over the images: the
// outer graph takes [batch, ...] inputs, the Loop runs the unchanged graph once per image and stacks
// its outputs. Images never interact in inference (eval-mode BatchNorm, per-image token selection),
// so this is the same computation for any batch size, with standard ops only.
import onnxProto from 'onnx-proto';
import { CtsError } from '../base/errors.js';

const { onnx } = onnxProto;
type GraphProto = onnxProto.onnx.IGraphProto;
type ValueInfo = onnxProto.onnx.IValueInfoProto;
const INT64 = onnx.TensorProto.DataType.INT64, BOOL = onnx.TensorProto.DataType.BOOL;

/** Name of the symbolic batch dimension in the rewritten model. */
export const BATCH_DIM = 'batch';

function dims(v: ValueInfo): { elemType: number; dims: number[] } {
  const t = v.type?.tensorType;
  if (!t) throw new CtsError(`graph value '${v.name}' is not a tensor`);
  return { elemType: t.elemType ?? 0, dims: (t.shape?.dim ?? []).map((d) => Number(d.dimValue ?? -1)) };
}

function info(name: string, elemType: number, shape: (number | string)[]): ValueInfo {
  return {
    name,
    type: { tensorType: { elemType, shape: { dim: shape.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) } } },
  };
}

/** Renames every use and definition of `from` in a graph's nodes (ONNX names are graph-wide). */
function rename(g: GraphProto, from: string, to: string): void {
  for (const n of g.node ?? []) {
    n.input = (n.input ?? []).map((x) => (x === from ? to : x));
    n.output = (n.output ?? []).map((x) => (x === from ? to : x));
  }
}

/**
 * Rewrites a batch-1 ONNX model (every input and output [1, ...]) into one whose inputs and outputs
 * have the symbolic first dimension `batch`, by looping the original graph over the images.
 */
export function dynamicBatch(bytes: Uint8Array): Uint8Array {
  const m = onnx.ModelProto.decode(bytes);
  const body = m.graph!;
  const inputs = body.input ?? [], outputs = body.output ?? [];
  for (const v of [...inputs, ...outputs]) {
    if (dims(v).dims[0] !== 1) throw new CtsError(`dynamicBatch needs a batch-1 model; '${v.name}' is [${dims(v).dims.join(',')}]`);
  }
  const outerNodes: onnxProto.onnx.INodeProto[] = [];
  const pre: onnxProto.onnx.INodeProto[] = [];
  const axis0 = { name: 'axes_0__loop', dataType: INT64, dims: [1], int64Data: [0] };
  // inside the loop: image i of each outer input, as the [1, ...] tensor the graph was built for
  for (const v of inputs) {
    const one = `${v.name}__one`;
    rename(body, v.name!, one);
    pre.push(
      { opType: 'Gather', input: [v.name!, 'iter__loop'], output: [`${v.name}__item`], attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 0 }] },
      { opType: 'Unsqueeze', input: [`${v.name}__item`, axis0.name], output: [one] },
    );
  }
  const post: onnxProto.onnx.INodeProto[] = [{ opType: 'Identity', input: ['cond__loop'], output: ['cond_out__loop'] }];
  const bodyOutputs: ValueInfo[] = [info('cond_out__loop', BOOL, [])];
  for (const v of outputs) {
    const one = `${v.name}__one`;
    rename(body, v.name!, one);
    const d = dims(v);
    post.push({ opType: 'Squeeze', input: [one, axis0.name], output: [`${v.name}__item`] });
    bodyOutputs.push(info(`${v.name}__item`, d.elemType, d.dims.slice(1)));
  }
  const loopBody: GraphProto = {
    name: `${body.name ?? 'graph'}_per_image`,
    node: [...pre, ...(body.node ?? []), ...post],
    initializer: [...(body.initializer ?? []), axis0],
    input: [info('iter__loop', INT64, []), info('cond__loop', BOOL, [])],
    output: bodyOutputs,
  };
  outerNodes.push(
    { opType: 'Shape', input: [inputs[0]!.name!], output: ['shape__loop'], attribute: [{ name: 'end', type: onnx.AttributeProto.AttributeType.INT, i: 1 }] },
    { opType: 'Squeeze', input: ['shape__loop'], output: ['batch__loop'] },
    {
      opType: 'Loop', name: 'per_image', input: ['batch__loop', ''], output: outputs.map((v) => v.name!),
      attribute: [{ name: 'body', type: onnx.AttributeProto.AttributeType.GRAPH, g: loopBody }],
    },
  );
  m.graph = {
    name: body.name ?? 'cts_seg',
    node: outerNodes,
    input: inputs.map((v) => info(v.name!, dims(v).elemType, [BATCH_DIM, ...dims(v).dims.slice(1)])),
    output: outputs.map((v) => info(v.name!, dims(v).elemType, [BATCH_DIM, ...dims(v).dims.slice(1)])),
  };
  return onnx.ModelProto.encode(m).finish();
}
