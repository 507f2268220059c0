// Emission of the IR as an ONNX ModelProto, through onnx-proto (protobufjs-generated ONNX schema).
import onnxProto from 'onnx-proto';
import { GraphError, ONNX_ELEM as ELEM, liveSet, opDef, type DType, type EmitCtx, type EmitTarget, type Graph, type HostTensor, type OnnxAttrs, type Value } from './ir.js';

const { onnx } = onnxProto;

/** Opset of the default domain. 18 takes reduction axes as inputs and has LayerNormalization. */
export const OPSET = 18;


/** Options for emission. */
export interface EmitOptions {
  /** Model metadata (metadata_props). */
  metadata?: Record<string, string>;
  /** Graph name. */
  name?: string;
  /** The ONNX Runtime build to emit for (default 'cpu'; see EmitTarget). */
  target?: EmitTarget;
}

function rawBytes(t: HostTensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

function tensorProto(name: string, t: HostTensor) {
  return onnx.TensorProto.create({ name, dims: [...t.shape], dataType: ELEM[t.dtype], rawData: rawBytes(t) });
}

function valueInfo(name: string, shape: readonly number[], dtype: DType) {
  return onnx.ValueInfoProto.create({
    name,
    type: { tensorType: { elemType: ELEM[dtype], shape: { dim: shape.map((d) => ({ dimValue: d })) } } },
  });
}

function attrProto(name: string, a: OnnxAttrs[string]) {
  const T = onnx.AttributeProto.AttributeType;
  if ('i' in a) return { name, type: T.INT, i: a.i };
  if ('f' in a) return { name, type: T.FLOAT, f: a.f };
  if ('ints' in a) return { name, type: T.INTS, ints: a.ints };
  if ('floats' in a) return { name, type: T.FLOATS, floats: a.floats };
  if ('s' in a) return { name, type: T.STRING, s: new TextEncoder().encode(a.s) };
  return { name, type: T.TENSOR, t: tensorProto('', a.t) };
}

/** Serialises the part of `graph` that its outputs need into ONNX bytes. */
export function emitOnnx(graph: Graph, opts: EmitOptions = {}): Uint8Array {
  if (graph.outputs.length === 0) throw new GraphError('graph has no outputs');
  // dead-code elimination: keep only nodes that an output needs
  const { nodes: keep, values: needed } = liveSet(graph, graph.outputs.map((o) => o.value));
  const nodes: ReturnType<typeof onnx.NodeProto.create>[] = [];
  const initializers: ReturnType<typeof onnx.TensorProto.create>[] = [];
  let fresh = 0;
  const constNames = new Map<Value, string>();
  // names in use, so that a named constant never takes an input's, an output's or another constant's name
  const taken = new Set<string>([...graph.inputs.map((v) => v.name!), ...graph.outputs.map((o) => o.name)]);
  const constName = (v: Value): string => {
    let n = v.name ?? `c${v.id}`;
    for (let i = 1; taken.has(n); i++) n = `${v.name ?? `c${v.id}`}_${i}`;
    taken.add(n);
    return n;
  };
  // A node value that is one graph output takes the output's name: a trailing Identity would copy it
  // (a training step returns every parameter and optimizer state: ~10 ms of copies for ViT-S).
  const count = new Map<Value, number>();
  for (const o of graph.outputs) count.set(o.value, (count.get(o.value) ?? 0) + 1);
  const outName = new Map(graph.outputs.filter((o) => o.value.kind === 'node' && count.get(o.value) === 1).map((o) => [o.value, o.name]));
  const ctx: EmitCtx = {
    target: opts.target ?? 'cpu',
    name(v) {
      const out = outName.get(v);
      if (out) return out;
      if (v.kind === 'input') return v.name!;
      if (v.kind === 'const') {
        let n = constNames.get(v);
        if (!n) {
          n = constName(v);
          constNames.set(v, n);
          initializers.push(tensorProto(n, v.constData!));
        }
        return n;
      }
      return `v${v.id}`;
    },
    node(opType, inputs, outputs, attrs = {}, domain) {
      const outs = typeof outputs === 'number' ? Array.from({ length: outputs }, () => `t${fresh++}`) : outputs;
      nodes.push(
        onnx.NodeProto.create({
          opType,
          input: inputs,
          output: outs,
          name: `n${nodes.length}_${opType}`,
          attribute: Object.entries(attrs).map(([k, a]) => attrProto(k, a)),
          ...(domain ? { domain } : {}),
        }),
      );
      return outs;
    },
    constant(t) {
      let n = `k${fresh++}`;
      while (taken.has(n)) n = `k${fresh++}`;
      taken.add(n);
      initializers.push(tensorProto(n, t));
      return n;
    },
  };
  graph.nodes.forEach((n) => {
    if (!keep.has(n)) return;
    opDef(n.op).emit(n, ctx, n.outputs.map((o) => ctx.name(o)));
  });
  for (const o of graph.outputs) if (!outName.has(o.value)) ctx.node('Identity', [ctx.name(o.value)], [o.name]);
  const usesMs = nodes.some((n) => n.domain === 'com.microsoft');
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'cts-seg',
    opsetImport: [{ domain: '', version: OPSET }, ...(usesMs ? [{ domain: 'com.microsoft', version: 1 }] : [])],
    graph: {
      name: opts.name ?? 'cts_seg',
      node: nodes,
      initializer: initializers,
      input: graph.inputs.filter((v) => needed.has(v)).map((v) => valueInfo(v.name!, v.shape, v.dtype)),
      output: graph.outputs.map((o) => valueInfo(o.name, o.value.shape, o.value.dtype)),
    },
    metadataProps: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value })),
  });
  return onnx.ModelProto.encode(model).finish();
}
