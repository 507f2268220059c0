// Weight storage of exported models, for shipping them where bytes count (a web page): float16
// storage with a Cast back to float32 at load, and ONNX external data shared by several graphs (the
// CTS graph and its no-sharing baseline hold the same weights; stored once, they cost half).
// Both are rewrites of the emitted ModelProto, so the graphs themselves stay exactly as built.
import { createHash } from 'node:crypto';
import onnxProto from 'onnx-proto';
import { CtsError } from '../base/errors.js';
import { toFloat16Bits } from '../base/float16.js';

const { onnx } = onnxProto;
type Tensor = onnxProto.onnx.ITensorProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT, FLOAT16 = onnx.TensorProto.DataType.FLOAT16;

function elements(t: Tensor): number {
  return (t.dims ?? []).reduce((a: number, d) => a * Number(d), 1);
}

/** Options of packWeights. */
export interface PackOptions {
  /** Store float32 initializers of at least `minElements` elements as float16 (default false). */
  float16?: boolean;
  /** Initializers smaller than this stay inline and float32 (default 1024 elements). */
  minElements?: number;
}

/** Result of packWeights. */
export interface PackedModels {
  /** The rewritten models, in the order given. */
  models: Uint8Array[];
  /** Contents of the external-data file that every model refers to by `location`. */
  data: Uint8Array;
  /** Bytes the models would have held without sharing. */
  unsharedBytes: number;
}

/**
 * Moves the large initializers of several ONNX models into one external-data file `location`
 * (relative to the models' folder), storing identical tensors once; with `float16`, they are
 * stored as float16 and a Cast node restores the float32 value under the original name.
 */
export function packWeights(models: Uint8Array[], location: string, o: PackOptions = {}): PackedModels {
  if (!location || location.includes('/') || location.includes('\\')) throw new CtsError(`external data location must be a plain file name, got '${location}'`);
  const minElements = o.minElements ?? 1024;
  const chunks: Uint8Array[] = [];
  const offsets = new Map<string, { offset: number; length: number }>();
  let size = 0, unshared = 0;
  const place = (bytes: Uint8Array): { offset: number; length: number } => {
    const key = createHash('sha256').update(bytes).digest('hex');
    let at = offsets.get(key);
    if (!at) {
      const pad = (64 - (size % 64)) % 64; // aligned offsets let ORT map or copy tensors directly
      if (pad) chunks.push(new Uint8Array(pad));
      at = { offset: size + pad, length: bytes.length };
      chunks.push(bytes);
      size = at.offset + bytes.length;
      offsets.set(key, at);
    }
    unshared += bytes.length;
    return at;
  };
  // initializers of subgraphs (the Loop body of a dynamic-batch export) are packed the same way
  const packGraph = (g: onnxProto.onnx.IGraphProto): void => {
    const casts: onnxProto.onnx.INodeProto[] = [];
    for (const t of g.initializer ?? []) {
      if (elements(t) < minElements || !t.rawData?.length) continue;
      let raw = t.rawData;
      if (o.float16 && t.dataType === FLOAT) {
        const src = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
        const half = new Uint16Array(src.length);
        for (let i = 0; i < src.length; i++) half[i] = toFloat16Bits(src[i]!);
        raw = new Uint8Array(half.buffer);
        const name = t.name!;
        t.name = `${name}__f16`;
        t.dataType = FLOAT16;
        casts.push(onnx.NodeProto.create({ opType: 'Cast', input: [t.name], output: [name], name: `${name}__cast`, attribute: [{ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: FLOAT }] }));
      }
      const at = place(new Uint8Array(raw));
      t.rawData = new Uint8Array(0);
      t.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
      t.externalData = [
        { key: 'location', value: location },
        { key: 'offset', value: String(at.offset) },
        { key: 'length', value: String(at.length) },
      ];
    }
    for (const n of g.node ?? []) for (const a of n.attribute ?? []) if (a.g) packGraph(a.g);
    g.node = [...casts, ...(g.node ?? [])];
  };
  const out = models.map((bytes) => {
    const m = onnx.ModelProto.decode(bytes);
    packGraph(m.graph!);
    return onnx.ModelProto.encode(m).finish();
  });
  const data = new Uint8Array(size);
  let pos = 0;
  for (const c of chunks) {
    data.set(c, pos);
    pos += c.length;
  }
  return { models: out, data, unsharedBytes: unshared };
}
