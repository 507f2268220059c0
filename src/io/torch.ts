// PyTorch checkpoints (torch.save) read without Python: the zip format of torch >= 1.6
// (`<name>/data.pkl` + one `<name>/data/<key>` member per storage) and the legacy format of
// torch < 1.6 (pickles of the magic number, protocol and sys_info, the object pickle, the list of
// storage keys, then the raw storages). Unpickling is allow-listed: a checkpoint may name only the
// tensor-rebuilding functions below, so os.system, torch.storage._load_from_bytes (which would run
// torch.load on embedded bytes) or a pickled nn.Module are refused before anything is built.
import { constants as bufferConstants } from 'node:buffer';
import { open } from 'node:fs/promises';
import { CtsError } from '../base/errors.js';
import { describeFsError } from './fs.node.js';
import { isPyTuple, latin1, PLAIN_DATA_GLOBALS, PyGlobal, pyTypeName, unpickle, unpickleAt, type AllowList } from './pickle.js';
import { numel, typedArrayFromBytes, type DType, type HostTensor } from '../base/tensor.js';
import { isZipFile, openZip } from './zip.js';

const MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;
const STATE_DICT_ONLY = 'only plain tensors and containers are allowed';

interface StorageType {
  dtype: DType;
  itemSize: number;
  /** float16 on disk, converted to float32 (HostTensor has no half type). */
  half?: boolean;
}

const STORAGE_TYPES: Record<string, StorageType> = {
  FloatStorage: { dtype: 'float32', itemSize: 4 },
  DoubleStorage: { dtype: 'float64', itemSize: 8 },
  HalfStorage: { dtype: 'float32', itemSize: 2, half: true },
  LongStorage: { dtype: 'int64', itemSize: 8 },
  IntStorage: { dtype: 'int32', itemSize: 4 },
  ByteStorage: { dtype: 'uint8', itemSize: 1 },
  BoolStorage: { dtype: 'bool', itemSize: 1 },
};

/** One storage of the file, by its key; its bytes are read only when a tensor needs them. */
interface RootStorage {
  key: string;
  type: StorageType;
  numel: number;
}

/** What a persistent id stands for: a whole storage or (legacy views) an element range of one. */
class StorageRef {
  constructor(readonly root: RootStorage, readonly offset: number, readonly numel: number) {}
}

/** A tensor as the pickle describes it (storage, offset, shape, strides), before its bytes are read. */
export class TorchTensor {
  constructor(readonly storage: StorageRef, readonly offset: number, readonly shape: number[], readonly stride: number[]) {}
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function counts(v: unknown, what: string): number[] {
  if (!Array.isArray(v) || !v.every(isCount)) throw new Error(`${what} must be a tuple of non-negative ints, got ${pyTypeName(v)}`);
  return [...v];
}

/** torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]). */
function rebuildTensor(a: readonly unknown[]): TorchTensor {
  const [storage, offset, size, stride] = a;
  if (!(storage instanceof StorageRef)) throw new Error(`expects a storage, got ${pyTypeName(storage)}`);
  if (!isCount(offset)) throw new Error('storage_offset must be a non-negative int');
  const shape = counts(size, 'size');
  const strides = counts(stride, 'stride');
  if (shape.length !== strides.length) throw new Error(`size has ${shape.length} dims but stride has ${strides.length}`);
  return new TorchTensor(storage, offset, shape, strides);
}

function notCallable(): never {
  throw new Error('storage types are not callable');
}

/** Exactly what state dicts need: tensors, parameters, their storage types, OrderedDict. */
export const TORCH_STATE_DICT_GLOBALS: AllowList = {
  'torch._utils._rebuild_tensor_v2': rebuildTensor,
  'torch._utils._rebuild_parameter': (a) => {
    if (!(a[0] instanceof TorchTensor)) throw new Error(`expects a tensor, got ${pyTypeName(a[0])}`);
    return a[0];
  },
  'collections.OrderedDict': PLAIN_DATA_GLOBALS['collections.OrderedDict']!,
  ...Object.fromEntries(Object.keys(STORAGE_TYPES).map((n) => [`torch.${n}`, notCallable])),
};

/** Options of {@link openTorchFile}. */
export interface OpenTorchOptions {
  /** Allow-list of the unpickler (default: {@link TORCH_STATE_DICT_GLOBALS}). */
  globals?: AllowList;
  /** End of the refusal message (default: "only plain tensors and containers are allowed"). */
  allowedWhat?: string;
}

/** An opened torch.save file: the unpickled object, and tensor data on demand. */
export interface TorchFile {
  format: 'zip' | 'legacy';
  /** The unpickled object; tensors in it are {@link TorchTensor}s. */
  root: unknown;
  /** Reads a tensor's storage and returns it as a dense C-order HostTensor (float16 -> float32). */
  tensor(t: TorchTensor): Promise<HostTensor>;
  close(): void;
}

/** Registry of the storages met while unpickling, shared by both formats. */
class Storages {
  readonly roots = new Map<string, RootStorage>();
  constructor(private readonly source: string) {}

  /** Decodes a persistent id: zip ('storage', type, key, location, numel), legacy adds view_metadata. */
  load(pid: unknown, legacy: boolean): StorageRef {
    if (!isPyTuple(pid) || pid.length < 5) throw new CtsError(`${this.source}: persistent id is a ${pyTypeName(pid)}, expected a ('storage', ...) tuple`);
    const typename = pid[0] instanceof Uint8Array ? latin1(pid[0]) : pid[0];
    if (typename === 'module') throw new CtsError(`refusing to load a pickled nn.Module from ${this.source}: save model.state_dict() instead`);
    if (typename !== 'storage') throw new CtsError(`${this.source}: unknown persistent id kind ${JSON.stringify(typename)}, expected 'storage'`);
    const [, cls, key, , n, view] = pid;
    const type = cls instanceof PyGlobal && cls.module === 'torch' ? STORAGE_TYPES[cls.name] : undefined;
    if (!type) throw new CtsError(`${this.source}: storage type ${pyTypeName(cls)} is not supported, expected one of ${Object.keys(STORAGE_TYPES).map((s) => `torch.${s}`).join(', ')}`);
    if (typeof key !== 'string' || !isCount(n)) throw new CtsError(`${this.source}: malformed storage id (key ${pyTypeName(key)}, size ${pyTypeName(n)})`);
    let root = this.roots.get(key);
    if (!root) this.roots.set(key, (root = { key, type, numel: n }));
    else if (root.type !== type || root.numel !== n) throw new CtsError(`${this.source}: storage '${key}' is declared twice with different types or sizes`);
    if (!legacy || view === null || view === undefined) return new StorageRef(root, 0, n);
    if (!isPyTuple(view) || view.length !== 3 || !isCount(view[1]) || !isCount(view[2])) throw new CtsError(`${this.source}: malformed storage view of '${key}'`);
    if (view[1] + view[2] > n) throw new CtsError(`${this.source}: storage view of '${key}' runs past its end`);
    return new StorageRef(root, view[1], view[2]);
  }
}

function halfToFloat(raw: Uint8Array): Float32Array {
  const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out = new Float32Array(raw.byteLength / 2);
  for (let i = 0; i < out.length; i++) {
    const h = v.getUint16(2 * i, true);
    const e = (h >> 10) & 31, m = h & 1023;
    const x = e === 0 ? m * 2 ** -24 : e === 31 ? (m ? NaN : Infinity) : (1 + m / 1024) * 2 ** (e - 15);
    out[i] = h & 0x8000 ? -x : x;
  }
  return out;
}

/** Largest dense copy of a view that holds more elements than its storage (expanded tensors). */
const MAX_REPEATED_VIEW_BYTES = 64 << 20;

/** Copies a (possibly strided) view out of its storage into a dense C-order tensor. */
function materialize(t: TorchTensor, bytes: Uint8Array, source: string): HostTensor {
  const { type } = t.storage.root;
  const isz = type.itemSize;
  let n: number;
  try {
    n = numel(t.shape);
  } catch (e) {
    throw new CtsError(`${source}: ${(e as Error).message}`);
  }
  // Bounded by the bytes actually present, before anything is allocated: a view repeating its data
  // (expand(), zero strides) is copied out dense, which is fine for a bias broadcast, but over a
  // one-element storage it can declare gigabytes.
  const present = Math.min(t.storage.numel, Math.floor(bytes.byteLength / isz) - t.storage.offset);
  if (n > present && n * isz > MAX_REPEATED_VIEW_BYTES) {
    throw new CtsError(`${source}: a tensor of shape [${t.shape.join(',')}] declares ${n} elements (${n * isz} bytes) but its storage holds ${Math.max(0, present)}; ` +
      `a view repeating data is copied out only up to ${MAX_REPEATED_VIEW_BYTES >> 20} MiB (re-save it with .contiguous())`);
  }
  const start = t.storage.offset + t.offset;
  const last = t.shape.reduce((acc, d, i) => acc + (d - 1) * t.stride[i]!, t.offset);
  if (n > 0 && last >= present) {
    throw new CtsError(`${source}: a tensor of shape [${t.shape.join(',')}] reaches element ${last} of a storage of ${Math.max(0, present)}`);
  }
  let contiguous = true;
  for (let i = t.shape.length - 1, want = 1; i >= 0; want *= t.shape[i]!, i--) if (t.shape[i] !== 1 && t.stride[i] !== want) contiguous = false;
  let raw: Uint8Array;
  if (contiguous || n === 0) raw = bytes.subarray(start * isz, (start + n) * isz);
  else {
    raw = new Uint8Array(n * isz);
    const rank = t.shape.length, inner = t.shape[rank - 1]!, innerStride = t.stride[rank - 1]!;
    const idx = new Array<number>(rank).fill(0);
    for (let row = 0, o = 0; row < n / inner; row++) {
      let base = start;
      for (let d = 0; d < rank - 1; d++) base += idx[d]! * t.stride[d]!;
      for (let j = 0; j < inner; j++, o += isz) {
        const s = (base + j * innerStride) * isz;
        for (let k = 0; k < isz; k++) raw[o + k] = bytes[s + k]!;
      }
      for (let d = rank - 2; d >= 0 && ++idx[d]! === t.shape[d]; d--) idx[d] = 0;
    }
  }
  if (type.half) return { dtype: 'float32', shape: [...t.shape], data: halfToFloat(raw) };
  return { dtype: type.dtype, shape: [...t.shape], data: typedArrayFromBytes(type.dtype, raw, 0, n) };
}

/** Reads a whole file with positioned reads, so files past readFile's 2 GiB limit still load. */
async function readWholeFile(path: string): Promise<Uint8Array> {
  const fh = await open(path, 'r').catch((err: unknown) => {
    throw new CtsError(`cannot read PyTorch file ${path}: ${describeFsError(err)}`, { cause: err });
  });
  try {
    const { size } = await fh.stat();
    if (size > bufferConstants.MAX_LENGTH) throw new CtsError(`PyTorch file ${path} is ${size} bytes, more than this Node.js can hold in memory; re-save it with torch >= 1.6 (zip format)`);
    const buf = Buffer.allocUnsafe(size);
    for (let at = 0; at < size; ) {
      const { bytesRead } = await fh.read(buf, at, Math.min(size - at, 1 << 30), at);
      if (bytesRead === 0) throw new CtsError(`PyTorch file ${path} shrank while being read`);
      at += bytesRead;
    }
    return new Uint8Array(buf.buffer, buf.byteOffset, size);
  } finally {
    await fh.close();
  }
}

async function openZipTorch(path: string, o: Required<OpenTorchOptions>): Promise<TorchFile> {
  const zip = await openZip(path, 'PyTorch file');
  try {
    const pkl = zip.names.filter((n) => /^[^/]+\/data\.pkl$/.test(n));
    if (pkl.length !== 1) throw new CtsError(`${path} is a zip archive without exactly one <name>/data.pkl member: not a torch.save checkpoint`);
    const prefix = pkl[0]!.slice(0, -'data.pkl'.length);
    if (zip.size(`${prefix}byteorder`) !== undefined && latin1(await zip.read(`${prefix}byteorder`)).trim() === 'big') {
      throw new CtsError(`${path} was saved on a big-endian machine; only little-endian checkpoints are supported`);
    }
    const storages = new Storages(path);
    const root = unpickle(await zip.read(pkl[0]!), { source: path, globals: o.globals, allowedWhat: o.allowedWhat, persistentLoad: (pid) => storages.load(pid, false) });
    const cache = new Map<string, Uint8Array>();
    return {
      format: 'zip',
      root,
      async tensor(t) {
        const r = t.storage.root;
        let bytes = cache.get(r.key);
        if (!bytes) {
          const name = `${prefix}data/${r.key}`;
          const size = zip.size(name);
          if (size === undefined) throw new CtsError(`${path} has no member '${name}' for storage '${r.key}' (truncated checkpoint?)`);
          if (size < r.numel * r.type.itemSize) throw new CtsError(`${path}: storage '${r.key}' has ${size} bytes, expected ${r.numel * r.type.itemSize}`);
          cache.set(r.key, (bytes = await zip.read(name)));
        }
        return materialize(t, bytes, path);
      },
      close: () => zip.close(),
    };
  } catch (e) {
    zip.close();
    throw e;
  }
}

function openLegacyTorch(path: string, buf: Uint8Array, o: Required<OpenTorchOptions>): TorchFile {
  const plain = { source: path };
  const magic = unpickleAt(buf, 0, plain);
  if (magic.value !== MAGIC) throw new CtsError(`${path} starts with a pickle but not torch.save's magic number: not a PyTorch checkpoint`);
  const proto = unpickleAt(buf, magic.end, plain);
  if (proto.value !== LEGACY_PROTOCOL) throw new CtsError(`${path}: legacy torch.save protocol ${String(proto.value)}, expected ${LEGACY_PROTOCOL}`);
  const sys = unpickleAt(buf, proto.end, plain);
  if (!(sys.value instanceof Map) || sys.value.get('little_endian') !== true) {
    throw new CtsError(`${path} was saved on a big-endian machine (or has no sys_info); only little-endian checkpoints are supported`);
  }
  const storages = new Storages(path);
  const obj = unpickleAt(buf, sys.end, { source: path, globals: o.globals, allowedWhat: o.allowedWhat, persistentLoad: (pid) => storages.load(pid, true) });
  const keys = unpickleAt(buf, obj.end, plain);
  if (!Array.isArray(keys.value) || !keys.value.every((k) => typeof k === 'string')) throw new CtsError(`${path}: storage key list is a ${pyTypeName(keys.value)}, expected a list of str`);
  // Storages follow in key order, each an int64 element count then the raw little-endian data.
  const data = new Map<string, Uint8Array>();
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = keys.end;
  for (const key of keys.value as string[]) {
    const root = storages.roots.get(key);
    if (!root) throw new CtsError(`${path}: storage '${key}' is listed but no tensor uses it (corrupt checkpoint)`);
    if (pos + 8 > buf.byteLength) throw new CtsError(`${path} is truncated: storage '${key}' is missing`);
    const count = view.getBigInt64(pos, true);
    if (count !== BigInt(root.numel)) throw new CtsError(`${path}: storage '${key}' holds ${count} elements, its tensors expect ${root.numel}`);
    const len = root.numel * root.type.itemSize;
    if (pos + 8 + len > buf.byteLength) throw new CtsError(`${path} is truncated inside storage '${key}' (${len} bytes expected)`);
    data.set(key, buf.subarray(pos + 8, pos + 8 + len));
    pos += 8 + len;
  }
  return {
    format: 'legacy',
    root: obj.value,
    async tensor(t) {
      const bytes = data.get(t.storage.root.key);
      if (!bytes) throw new CtsError(`${path}: storage '${t.storage.root.key}' is not in the file (truncated checkpoint?)`);
      return materialize(t, bytes, path);
    },
    close: () => undefined,
  };
}

/** Opens a torch.save file of either format and unpickles its object through the allow-list. */
export async function openTorchFile(path: string, opts: OpenTorchOptions = {}): Promise<TorchFile> {
  const o = { globals: opts.globals ?? TORCH_STATE_DICT_GLOBALS, allowedWhat: opts.allowedWhat ?? STATE_DICT_ONLY };
  if (await isZipFile(path, 'PyTorch file')) return openZipTorch(path, o);
  const buf = await readWholeFile(path);
  if (buf[0] === 0x80) return openLegacyTorch(path, buf, o);
  if (buf.byteLength > 262 && latin1(buf.subarray(257, 262)) === 'ustar') {
    throw new CtsError(`${path} is a tar-format checkpoint of torch < 0.4, which is not supported; re-save it with a newer torch`);
  }
  throw new CtsError(`${path} is not a PyTorch checkpoint: neither a zip archive (torch >= 1.6) nor a legacy torch.save pickle`);
}

/** Finds the state dict in a checkpoint object, unwrapping `{'model': ...}` / `{'state_dict': ...}`. */
function findStateDict(v: unknown, path: string, trail = ''): Map<string, TorchTensor> {
  const where = `${path}${trail}`;
  if (!(v instanceof Map)) {
    throw new CtsError(`${where} is a ${pyTypeName(v)}, expected a state dict (a dict of tensors) or a checkpoint dict holding one under 'model' or 'state_dict'`);
  }
  for (const key of ['model', 'state_dict']) {
    if (v.get(key) instanceof Map) return findStateDict(v.get(key), path, `${trail}['${key}']`);
  }
  const entries = [...v.entries()];
  if (!entries.some(([, t]) => t instanceof TorchTensor)) {
    const keys = entries.slice(0, 6).map(([k]) => String(k)).join(', ');
    throw new CtsError(`${where} holds no tensors (keys: ${keys || 'none'}); expected a state dict, or a checkpoint holding one under 'model' or 'state_dict'`);
  }
  for (const [k, t] of entries) {
    if (typeof k !== 'string') throw new CtsError(`${where} has a ${pyTypeName(k)} key, expected str parameter names`);
    if (!(t instanceof TorchTensor)) throw new CtsError(`${where}: entry '${k}' is a ${pyTypeName(t)}, expected a tensor`);
  }
  return v as Map<string, TorchTensor>;
}

/** Options of {@link readTorchStateDict}. */
export interface ReadStateDictOptions {
  /** Called after each tensor with (done, total), for progress display. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Reads the state dict of a PyTorch checkpoint (zip or legacy format) as host tensors, in file order.
 * Nested checkpoints (`{'model': sd, 'optimizer': ...}`, `{'state_dict': sd}`) are unwrapped; float16
 * becomes float32; strided views are copied out dense. Only tensors and containers may be pickled.
 */
export async function readTorchStateDict(path: string, o: ReadStateDictOptions = {}): Promise<Map<string, HostTensor>> {
  const f = await openTorchFile(path);
  try {
    const sd = findStateDict(f.root, path);
    const out = new Map<string, HostTensor>();
    for (const [k, t] of sd) {
      out.set(k, await f.tensor(t));
      o.onProgress?.(out.size, sd.size);
    }
    return out;
  } finally {
    f.close();
  }
}
