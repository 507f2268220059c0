// Weights read back from a cts-seg export. Exported initializers carry the official state-dict names
// of the weights they hold (constantParams, src/nn/params.ts): a float weight is `NAME`; packWeights
// stores a large one as float16 `NAME__f16` (a Cast restores NAME), possibly in an external-data
// file; an int8 export's quantized forms are `NAME_quantized` + `NAME_scale`; constants the graph
// made itself are unnamed (`c123`, `k12`). So a float32 export (with its external data) holds the
// whole checkpoint's inference weights, and a shipped model can be rebuilt from its files.
import onnxProto from 'onnx-proto';
import { CtsError } from '../base/errors.js';
import { typedArrayFromBytes, type HostTensor } from '../base/tensor.js';
import { EXPORT_FORMAT } from './export.js';
import { float16Table } from '../base/float16.js';

const { onnx } = onnxProto;
type GraphProto = onnxProto.onnx.IGraphProto;
type TensorProto = onnxProto.onnx.ITensorProto;
const { FLOAT, FLOAT16 } = onnx.TensorProto.DataType;
const EXTERNAL = onnx.TensorProto.DataLocation.EXTERNAL;

/** Initializers the graph made itself (emitOnnx's fresh names, with a `_N` suffix when taken). */
const UNNAMED = /^[ck]\d+(_\d+)?$/;
/** Suffix of a weight that packWeights stores as float16. */
const F16 = '__f16';

function* initializers(g: GraphProto): Generator<TensorProto> {
  yield* g.initializer ?? [];
  // a dynamic-batch export holds the batch-1 graph, with the weights, as a Loop body
  for (const n of g.node ?? []) {
    for (const a of n.attribute ?? []) {
      if (a.g) yield* initializers(a.g);
      for (const sub of a.graphs ?? []) yield* initializers(sub);
    }
  }
}

/**
 * The float weights of a cts-seg export (`exportModel`, `cts-seg export`, `npm run web:model`) by
 * their state-dict names, as float32 HostTensors: float32 initializers as stored (inline or in
 * external data), float16 ones (`NAME__f16` from packWeights, or `NAME`) widened exactly to float32
 * under NAME. int8 weights (`NAME_quantized`/`NAME_scale`) and the graph's own constants are left out, so
 * a float32 export gives back every weight the model uses, an int8 export only its float ones
 * (biases, norms, embeddings). `externalData` is the bytes of the file that the model's external
 * initializers name by `location` (packWeights' one file, e.g. weights.bin). CtsError when the bytes
 * are not a cts-seg export, or the external data is missing, too short or out of range.
 */
export function readOnnxWeights(model: Uint8Array, externalData?: Uint8Array): Map<string, HostTensor> {
  let m: onnxProto.onnx.ModelProto;
  try {
    m = onnx.ModelProto.decode(model);
  } catch (e) {
    throw new CtsError(`the bytes are not a readable ONNX model (${String((e as Error).message).split('\n')[0]})`);
  }
  const format = (m.metadataProps ?? []).find((p) => p.key === 'format')?.value;
  if (format !== EXPORT_FORMAT || !m.graph) {
    throw new CtsError(`the ONNX model is not a cts-seg export (metadata format '${format ?? 'missing'}', expected ${EXPORT_FORMAT}): its weights have no state-dict names`);
  }
  const all = [...initializers(m.graph)];
  const names = new Set(all.map((t) => t.name ?? ''));
  const out = new Map<string, HostTensor>();
  let location: string | undefined;
  for (const t of all) {
    const stored = t.name ?? '';
    const name = stored.endsWith(F16) ? stored.slice(0, -F16.length) : stored;
    if (!name || UNNAMED.test(name) || name.endsWith('_quantized')) continue;
    if (name.endsWith('_scale') && names.has(`${name.slice(0, -'_scale'.length)}_quantized`)) continue;
    const dtype = t.dataType ?? 0;
    if (dtype !== FLOAT && dtype !== FLOAT16) continue; // integer constants are not weights
    if (stored !== name && dtype !== FLOAT16) throw new CtsError(`initializer '${stored}' is named as float16 weights but holds data type ${dtype}`);
    if (out.has(name)) continue; // a Loop body repeats the outer graph's name only for the same weights
    const shape = (t.dims ?? []).map((d) => Number(d));
    if (shape.some((d) => !Number.isSafeInteger(d) || d < 0)) throw new CtsError(`initializer '${stored}' has a bad shape [${shape.join(',')}]`);
    const count = shape.reduce((a, d) => a * d, 1);
    const itemBytes = dtype === FLOAT ? 4 : 2;
    let bytes: Uint8Array;
    let offset = 0;
    if (t.dataLocation === EXTERNAL) {
      const kv = Object.fromEntries((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
      const where = kv.location ?? '';
      if (location !== undefined && where !== location) throw new CtsError(`the ONNX model keeps its weights in more than one external-data file ('${location}', '${where}'); readOnnxWeights takes one`);
      location = where;
      if (!externalData) throw new CtsError(`the ONNX model keeps '${stored}' in the external-data file '${where}': pass that file's bytes too`);
      offset = kv.offset === undefined ? 0 : Number(kv.offset);
      const length = kv.length === undefined ? count * itemBytes : Number(kv.length);
      if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || offset + length > externalData.length) {
        throw new CtsError(`'${stored}' lies at bytes ${kv.offset ?? 0}..+${kv.length ?? length} of the external-data file '${where}', which has ${externalData.length} bytes: wrong or truncated file`);
      }
      if (length !== count * itemBytes) throw new CtsError(`'${stored}' [${shape.join(',')}] takes ${count * itemBytes} bytes, its external data ${length}`);
      bytes = externalData;
    } else if (t.rawData && t.rawData.length) {
      bytes = t.rawData;
      if (bytes.length !== count * itemBytes) throw new CtsError(`'${stored}' [${shape.join(',')}] takes ${count * itemBytes} bytes, its raw data ${bytes.length}`);
    } else if (dtype === FLOAT && t.floatData?.length === count) {
      out.set(name, { dtype: 'float32', shape, data: Float32Array.from(t.floatData) });
      continue;
    } else if (dtype === FLOAT16 && t.int32Data?.length === count) {
      const table = float16Table();
      out.set(name, { dtype: 'float32', shape, data: Float32Array.from(t.int32Data, (h) => table[h & 0xffff]!) });
      continue;
    } else if (count === 0) {
      bytes = new Uint8Array(0);
    } else {
      throw new CtsError(`initializer '${stored}' [${shape.join(',')}] holds no data`);
    }
    if (dtype === FLOAT) {
      out.set(name, { dtype: 'float32', shape, data: typedArrayFromBytes('float32', bytes, offset, count) });
    } else {
      const half = new Uint16Array(count), table = float16Table();
      new Uint8Array(half.buffer).set(bytes.subarray(offset, offset + 2 * count));
      out.set(name, { dtype: 'float32', shape, data: Float32Array.from(half, (h) => table[h]!) });
    }
  }
  return out;
}
