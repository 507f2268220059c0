// Writes PyTorch's torch.save zip container (torch >= 1.6) without Python, so a cts-seg model can be
// handed to the official code. Hand-written because no npm package writes this format: a stored zip
// (every member's data 64-byte aligned by an `FB` extra field in its local header, as torch's own
// writer does, so torch can map storages in place) holding `<stem>/data.pkl`, one raw little-endian
// `<stem>/data/<key>` per tensor and `<stem>/version`. The pickle is protocol 2 and names only
// collections.OrderedDict, torch._utils._rebuild_tensor_v2 and torch.<Type>Storage, which is what
// `torch.load(..., weights_only=True)` accepts. yazl is not used: it cannot pad local headers.
import { CtsError } from '../base/errors.js';
import { numel, tensorBytes, type DType, type HostTensor } from '../base/tensor.js';

/** What the writer can pickle: ints, strings, bools, None, tensors, and str-keyed dicts of these. */
export type TorchValue = number | string | boolean | null | HostTensor | TorchDict;
/** A dict; `ordered` writes a collections.OrderedDict (what state_dict() returns), else a plain dict. */
export interface TorchDict {
  ordered: boolean;
  entries: Map<string, TorchValue>;
}

const STORAGE_OF: Partial<Record<DType, string>> = {
  float32: 'FloatStorage', float64: 'DoubleStorage', int64: 'LongStorage', int32: 'IntStorage', uint8: 'ByteStorage', bool: 'BoolStorage',
};
const ALIGN = 64;

const isTensor = (v: TorchValue): v is HostTensor => typeof v === 'object' && v !== null && 'dtype' in v;

/** A minimal protocol-2 pickler for the values above; storages are collected for the zip. */
class Pickler {
  private readonly parts: Uint8Array[] = [];
  readonly storages: { key: string; bytes: Uint8Array }[] = [];

  private op(...bytes: number[]): void {
    this.parts.push(Uint8Array.from(bytes));
  }
  private ascii(s: string): void {
    this.parts.push(new TextEncoder().encode(s));
  }
  private str(s: string): void {
    const b = new TextEncoder().encode(s);
    const head = new Uint8Array(5);
    head[0] = 0x58; // BINUNICODE
    new DataView(head.buffer).setUint32(1, b.byteLength, true);
    this.parts.push(head, b);
  }
  private int(n: number): void {
    if (!Number.isSafeInteger(n)) throw new CtsError(`cannot pickle ${n}: only integers are supported`);
    if (n >= 0 && n < 256) this.op(0x4b, n); // BININT1
    else if (n >= 0 && n < 65536) this.op(0x4d, n & 255, n >> 8); // BININT2
    else if (n >= -(2 ** 31) && n < 2 ** 31) {
      const b = new Uint8Array(5);
      b[0] = 0x4a; // BININT
      new DataView(b.buffer).setInt32(1, n, true);
      this.parts.push(b);
    } else {
      // LONG1: little-endian two's complement, as short as the value allows
      let v = BigInt(n);
      const bytes: number[] = [];
      do {
        bytes.push(Number(v & 0xffn));
        v >>= 8n;
      } while (!(v === 0n && bytes[bytes.length - 1]! < 128) && !(v === -1n && bytes[bytes.length - 1]! >= 128));
      this.op(0x8a, bytes.length, ...bytes);
    }
  }
  private global(module: string, name: string): void {
    this.ascii(`c${module}\n${name}\n`);
  }
  private tuple(items: number[]): void {
    this.op(0x28); // MARK
    for (const i of items) this.int(i);
    this.op(0x74); // TUPLE
  }
  private emptyOrderedDict(): void {
    this.global('collections', 'OrderedDict');
    this.op(0x29, 0x52); // EMPTY_TUPLE, REDUCE
  }

  private tensor(t: HostTensor, name: string): void {
    const storage = STORAGE_OF[t.dtype];
    if (!storage) throw new CtsError(`cannot save '${name}': dtype ${t.dtype} has no torch storage type here`);
    const key = String(this.storages.length);
    this.storages.push({ key, bytes: tensorBytes(t) });
    const stride = t.shape.map((_, i) => t.shape.slice(i + 1).reduce((a, b) => a * b, 1));
    // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks)
    this.global('torch._utils', '_rebuild_tensor_v2');
    this.op(0x28); // MARK (argument tuple)
    this.op(0x28); // MARK (persistent id)
    this.str('storage');
    this.global('torch', storage);
    this.str(key);
    this.str('cpu');
    this.int(numel(t.shape));
    this.op(0x74, 0x51); // TUPLE, BINPERSID
    this.int(0);
    this.tuple(t.shape);
    this.tuple(stride);
    this.op(0x89); // NEWFALSE
    this.emptyOrderedDict();
    this.op(0x74, 0x52); // TUPLE, REDUCE
  }

  value(v: TorchValue, name: string): void {
    if (v === null) this.op(0x4e);
    else if (typeof v === 'boolean') this.op(v ? 0x88 : 0x89);
    else if (typeof v === 'number') this.int(v);
    else if (typeof v === 'string') this.str(v);
    else if (isTensor(v)) this.tensor(v, name);
    else {
      if (v.ordered) this.emptyOrderedDict();
      else this.op(0x7d); // EMPTY_DICT
      if (v.entries.size === 0) return;
      this.op(0x28); // MARK
      for (const [k, x] of v.entries) {
        this.str(k);
        this.value(x, name ? `${name}.${k}` : k);
      }
      this.op(0x75); // SETITEMS
    }
  }

  finish(root: TorchValue): Uint8Array {
    this.op(0x80, 2); // PROTO 2
    this.value(root, '');
    this.op(0x2e); // STOP
    return concat(this.parts);
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

let crcTable: Uint32Array | undefined;
/** CRC-32 (IEEE), as zip needs it. */
export function crc32(b: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) c = crcTable[(c ^ b[i]!) & 255]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** A zip of stored (uncompressed) members, each member's data starting at a multiple of 64 bytes. */
export function storedZip(members: { name: string; data: Uint8Array }[]): Uint8Array {
  const enc = new TextEncoder();
  const locals: { name: Uint8Array; data: Uint8Array; crc: number; offset: number; pad: number }[] = [];
  let offset = 0;
  for (const m of members) {
    const name = enc.encode(m.name);
    const pad = (ALIGN - ((offset + 30 + name.byteLength + 4) % ALIGN)) % ALIGN;
    locals.push({ name, data: m.data, crc: crc32(m.data), offset, pad });
    offset += 30 + name.byteLength + 4 + pad + m.data.byteLength;
  }
  const cdStart = offset;
  const cdSize = locals.reduce((a, l) => a + 46 + l.name.byteLength, 0);
  // Zip64 would be needed past 4 GiB; no Segmenter checkpoint comes near it.
  if (cdStart + cdSize + 22 > 0xffffffff) throw new CtsError('the checkpoint would be larger than 4 GiB, which this zip writer does not support');
  const out = new Uint8Array(cdStart + cdSize + 22);
  const v = new DataView(out.buffer);
  for (const l of locals) {
    let p = l.offset;
    v.setUint32(p, 0x04034b50, true);
    v.setUint16(p + 4, 20, true); // version needed: 2.0
    v.setUint32(p + 14, l.crc, true);
    v.setUint32(p + 18, l.data.byteLength, true);
    v.setUint32(p + 22, l.data.byteLength, true);
    v.setUint16(p + 26, l.name.byteLength, true);
    v.setUint16(p + 28, 4 + l.pad, true);
    out.set(l.name, (p += 30));
    v.setUint16((p += l.name.byteLength), 0x4246, true); // 'FB': torch's padding field
    v.setUint16(p + 2, l.pad, true);
    out.fill(0x5a, p + 4, p + 4 + l.pad); // 'Z'
    out.set(l.data, p + 4 + l.pad);
  }
  let p = cdStart;
  for (const l of locals) {
    v.setUint32(p, 0x02014b50, true);
    v.setUint16(p + 4, 20, true);
    v.setUint16(p + 6, 20, true);
    v.setUint32(p + 16, l.crc, true);
    v.setUint32(p + 20, l.data.byteLength, true);
    v.setUint32(p + 24, l.data.byteLength, true);
    v.setUint16(p + 28, l.name.byteLength, true);
    v.setUint32(p + 42, l.offset, true);
    out.set(l.name, p + 46);
    p += 46 + l.name.byteLength;
  }
  v.setUint32(p, 0x06054b50, true);
  v.setUint16(p + 8, locals.length, true);
  v.setUint16(p + 10, locals.length, true);
  v.setUint32(p + 12, cdSize, true);
  v.setUint32(p + 16, cdStart, true);
  return out;
}

/**
 * `torch.save(root, f)` as bytes: `stem` is the archive's top folder (torch uses the file name
 * without extension, e.g. `checkpoint` for checkpoint.pth). Tensors are written contiguous, one
 * storage each.
 */
export function serializeTorchSave(root: TorchValue, stem = 'archive'): Uint8Array {
  if (!/^[A-Za-z0-9_.-]+$/.test(stem)) throw new CtsError(`archive name '${stem}' must be a plain file stem`);
  const p = new Pickler();
  const pkl = p.finish(root);
  return storedZip([
    { name: `${stem}/data.pkl`, data: pkl },
    ...p.storages.map((s) => ({ name: `${stem}/data/${s.key}`, data: s.bytes })),
    { name: `${stem}/version`, data: new TextEncoder().encode('3\n') },
  ]);
}
