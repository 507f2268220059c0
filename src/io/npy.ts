// Hand-written NumPy .npy (format v1.0/2.0/3.0) reader and writer; no suitable npm library is available in this environment.
import { readFile } from 'node:fs/promises';
import { CtsError } from '../base/errors.js';
import { describeFsError, writeFileAtomic } from './fs.node.js';
import type { DType, HostTensor } from '../base/tensor.js';
import { itemSize, numel, tensorBytes, typedArrayFromBytes, validateHostTensor } from '../base/tensor.js';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"
const ARRAY_ALIGN = 64;
// numpy leaves room for the leading axis to grow to this many digits so files can be appended in place.
const GROWTH_AXIS_MAX_DIGITS = 21;
const FROM_DESCR: Record<string, DType> = {
  '<f4': 'float32', '<f8': 'float64', '<i8': 'int64', '<i4': 'int32', '|u1': 'uint8', '<u1': 'uint8', '|i1': 'int8', '<i1': 'int8', '|b1': 'bool',
};
// float16 is written as '<f2' but not read back (SUPPORTED): arrays are read as float32 or wider
const TO_DESCR: Record<DType, string> = { float32: '<f4', float64: '<f8', int64: '<i8', int32: '<i4', uint8: '|u1', int8: '|i1', bool: '|b1', float16: '<f2' };
const SUPPORTED = "'<f4', '<f8', '<i8', '<i4', '|u1', '|i1', '|b1'";

type PyValue = string | number | boolean | null | PyValue[] | { [k: string]: PyValue };

/** Minimal parser for the Python literal subset numpy writes (dict, tuple, list, str, int, True/False/None); never evals. */
class PyLiteralParser {
  private pos = 0;
  constructor(private readonly s: string) {}

  parseAll(): PyValue {
    const v = this.value();
    this.ws();
    if (this.pos !== this.s.length) this.fail('unexpected trailing text');
    return v;
  }

  private fail(msg: string): never {
    throw new Error(`${msg} at offset ${this.pos}`);
  }

  private ws(): void {
    while (this.pos < this.s.length && /\s/.test(this.s[this.pos]!)) this.pos++;
  }

  private value(): PyValue {
    this.ws();
    const c = this.s[this.pos];
    if (c === '{') return this.dict();
    if (c === '(') return this.seq(')');
    if (c === '[') return this.seq(']');
    if (c === "'" || c === '"') return this.str();
    const m = /^(?:[+-]?\d+L?|True|False|None)/.exec(this.s.slice(this.pos));
    if (!m) this.fail('unexpected token');
    this.pos += m[0].length;
    if (m[0] === 'True') return true;
    if (m[0] === 'False') return false;
    if (m[0] === 'None') return null;
    // Python 2 era files may spell longs as "3L".
    return Number(m[0].replace(/L$/, ''));
  }

  private str(): string {
    const q = this.s[this.pos++];
    let out = '';
    while (this.pos < this.s.length) {
      const c = this.s[this.pos++]!;
      if (c === q) return out;
      if (c === '\\') {
        const e = this.s[this.pos++];
        out += e === 'n' ? '\n' : e === 't' ? '\t' : (e ?? '');
      } else out += c;
    }
    return this.fail('unterminated string');
  }

  private seq(close: string): PyValue[] {
    this.pos++;
    const items: PyValue[] = [];
    for (;;) {
      this.ws();
      if (this.s[this.pos] === close) {
        this.pos++;
        return items;
      }
      items.push(this.value());
      this.ws();
      if (this.s[this.pos] === ',') this.pos++;
      else if (this.s[this.pos] !== close) this.fail(`expected ',' or '${close}'`);
    }
  }

  private dict(): { [k: string]: PyValue } {
    this.pos++;
    const out: { [k: string]: PyValue } = {};
    for (;;) {
      this.ws();
      if (this.s[this.pos] === '}') {
        this.pos++;
        return out;
      }
      const k = this.value();
      if (typeof k !== 'string') this.fail('dict keys must be strings');
      this.ws();
      if (this.s[this.pos++] !== ':') this.fail("expected ':'");
      out[k] = this.value();
      this.ws();
      if (this.s[this.pos] === ',') this.pos++;
      else if (this.s[this.pos] !== '}') this.fail("expected ',' or '}'");
    }
  }
}

function descrProblem(descr: PyValue): string {
  if (typeof descr !== 'string') return `structured/record dtype ${JSON.stringify(descr)} is not supported`;
  if (/^[|<>=]?O/.test(descr)) return `object arrays (descr '${descr}') are not supported`;
  if (descr.startsWith('>')) return `big-endian data (descr '${descr}') is not supported`;
  return `unsupported dtype descr '${descr}'`;
}

/** Parses .npy bytes (v1.0/2.0/3.0, C order, little-endian numeric/bool dtypes) into a HostTensor. */
export function parseNpy(bytes: Uint8Array, source = '<buffer>'): HostTensor {
  const where = `npy file ${source}`;
  if (bytes.byteLength < 10 || !MAGIC.every((b, i) => bytes[i] === b)) {
    throw new CtsError(`${where}: bad magic, expected a NumPy .npy file starting with \\x93NUMPY`);
  }
  const major = bytes[6]!;
  const minor = bytes[7]!;
  if (major < 1 || major > 3) throw new CtsError(`${where}: unsupported format version ${major}.${minor}, expected 1.0, 2.0 or 3.0`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lenSize = major === 1 ? 2 : 4;
  if (bytes.byteLength < 8 + lenSize) throw new CtsError(`${where} is truncated: no room for the header length`);
  const hlen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const dataStart = 8 + lenSize + hlen;
  if (dataStart > bytes.byteLength) {
    throw new CtsError(`${where} is truncated: header length ${hlen} exceeds the ${bytes.byteLength - 8 - lenSize} bytes after the length field`);
  }
  const headerBytes = bytes.subarray(8 + lenSize, dataStart);
  // v1/v2 headers are latin1 by spec; v3 allows UTF-8 (only relevant for structured field names).
  const text = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(headerBytes);

  let header: PyValue;
  try {
    header = new PyLiteralParser(text).parseAll();
  } catch (e) {
    throw new CtsError(`${where}: cannot parse header ${JSON.stringify(text.trim())} (${(e as Error).message}), expected a dict with descr, fortran_order, shape`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new CtsError(`${where}: header is not a dict, expected {'descr': ..., 'fortran_order': ..., 'shape': ...}`);
  }
  const keys = Object.keys(header).sort();
  if (keys.join(',') !== 'descr,fortran_order,shape') {
    throw new CtsError(`${where}: header has keys [${keys.join(', ')}], expected exactly descr, fortran_order, shape`);
  }
  const { descr, fortran_order: fortran, shape } = header as { descr: PyValue; fortran_order: PyValue; shape: PyValue };
  const dtype = typeof descr === 'string' ? FROM_DESCR[descr] : undefined;
  if (dtype === undefined) throw new CtsError(`${where}: ${descrProblem(descr as PyValue)}, expected one of ${SUPPORTED}`);
  if (typeof fortran !== 'boolean') throw new CtsError(`${where}: fortran_order must be True or False`);
  if (fortran) {
    throw new CtsError(`${where}: fortran_order=True is not supported, expected C order (save with np.ascontiguousarray)`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) {
    throw new CtsError(`${where}: shape must be a tuple of non-negative integers, got ${JSON.stringify(shape)}`);
  }
  const dims = shape as number[];
  let n: number;
  try {
    n = numel(dims);
  } catch (e) {
    throw new CtsError(`${where}: ${(e as Error).message}`);
  }
  const have = bytes.byteLength - dataStart;
  const need = n * itemSize(dtype);
  if (have !== need) {
    const why = have < need ? ' (truncated)' : ' (trailing bytes)';
    throw new CtsError(`${where}: file has ${have} bytes of data, expected ${need} for shape [${dims.join(',')}] ${descr as string}${why}`);
  }
  return { dtype, shape: [...dims], data: typedArrayFromBytes(dtype, bytes, dataStart, n) };
}

/** Reads and parses a .npy file; throws CtsError naming the path when it cannot be read. */
export async function readNpy(path: string): Promise<HostTensor> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new CtsError(`cannot read npy file ${path}: ${describeFsError(err)}`, { cause: err });
  }
  return parseNpy(bytes, path);
}

function pyTupleRepr(shape: readonly number[]): string {
  if (shape.length === 1) return `(${shape[0]},)`;
  return `(${shape.join(', ')})`;
}

/** Serializes a HostTensor to .npy bytes exactly as numpy.save does (v1.0, or v2.0 if the header is too long). */
export function serializeNpy(t: HostTensor): Uint8Array {
  try {
    validateHostTensor(t);
  } catch (e) {
    throw new CtsError(`cannot serialize npy: ${(e as Error).message}`);
  }
  let dict = `{'descr': '${TO_DESCR[t.dtype]}', 'fortran_order': False, 'shape': ${pyTupleRepr(t.shape)}, }`;
  if (t.shape.length > 0) dict += ' '.repeat(Math.max(0, GROWTH_AXIS_MAX_DIGITS - String(t.shape[0]).length));
  const header = new TextEncoder().encode(dict);
  const hlen = header.byteLength + 1; // + trailing newline
  // Mirrors numpy's _wrap_header: note it adds a full 64 bytes of padding when already aligned.
  let major = 1;
  let lenSize = 2;
  let pad = ARRAY_ALIGN - ((6 + 2 + lenSize + hlen) % ARRAY_ALIGN);
  if (hlen + pad > 0xffff) {
    major = 2;
    lenSize = 4;
    pad = ARRAY_ALIGN - ((6 + 2 + lenSize + hlen) % ARRAY_ALIGN);
  }
  const dataStart = 8 + lenSize + hlen + pad;
  const out = new Uint8Array(dataStart + t.data.byteLength);
  out.set(MAGIC, 0);
  out[6] = major;
  out[7] = 0;
  const view = new DataView(out.buffer);
  if (major === 1) view.setUint16(8, hlen + pad, true);
  else view.setUint32(8, hlen + pad, true);
  out.set(header, 8 + lenSize);
  out.fill(0x20, 8 + lenSize + header.byteLength, dataStart - 1);
  out[dataStart - 1] = 0x0a;
  out.set(tensorBytes(t), dataStart);
  return out;
}

/** Serializes and atomically writes a .npy file (the target is untouched if serialization fails). */
export async function writeNpy(path: string, t: HostTensor): Promise<void> {
  await writeFileAtomic(path, serializeNpy(t));
}
