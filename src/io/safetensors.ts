// Hand-written safetensors reader/writer: no npm library for the format is available in this environment.
import { CtsError } from '../base/errors.js';
import type { DType, HostTensor } from '../base/tensor.js';
import { itemSize, numel, tensorBytes, typedArrayFromBytes, validateHostTensor } from '../base/tensor.js';

/** Parsed contents of a safetensors file. */
export interface SafetensorsContents {
  tensors: Map<string, HostTensor>;
  metadata: Record<string, string>;
}

const FROM_ST: Record<string, DType> = { F32: 'float32', F64: 'float64', I64: 'int64', I32: 'int32', U8: 'uint8', I8: 'int8', BOOL: 'bool' };
// float16 is written as F16 but not read back (SUPPORTED): checkpoints hold float32 weights
const TO_ST: Record<DType, string> = { float32: 'F32', float64: 'F64', int64: 'I64', int32: 'I32', uint8: 'U8', int8: 'I8', bool: 'BOOL', float16: 'F16' };
const SUPPORTED = 'F32/F64/I64/I32/U8/I8/BOOL';
// Same cap as the reference implementation: a larger header is almost certainly a corrupt length field.
const MAX_HEADER = 100_000_000;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Parses safetensors bytes into host tensors (copied into aligned arrays) and the `__metadata__` map. */
export function parseSafetensors(bytes: Uint8Array, source = '<buffer>'): SafetensorsContents {
  const where = `safetensors file ${source}`;
  if (bytes.byteLength < 8) {
    throw new CtsError(`${where} is truncated: ${bytes.byteLength} bytes, expected at least 8 (header length)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const hlenBig = view.getBigUint64(0, true);
  if (hlenBig > BigInt(bytes.byteLength - 8)) {
    throw new CtsError(`${where}: header length ${hlenBig} exceeds the ${bytes.byteLength - 8} bytes after the length field (truncated or not a safetensors file)`);
  }
  const hlen = Number(hlenBig);
  if (hlen > MAX_HEADER) throw new CtsError(`${where}: header length ${hlen} exceeds the ${MAX_HEADER}-byte limit`);

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + hlen));
  } catch {
    throw new CtsError(`${where}: header is not valid UTF-8`);
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw new CtsError(`${where}: header is not valid JSON (${(e as Error).message}), expected a JSON object`);
  }
  if (!isPlainObject(header)) throw new CtsError(`${where}: header must be a JSON object mapping tensor names to {dtype, shape, data_offsets}`);

  const metadata: Record<string, string> = {};
  const rawMeta = header['__metadata__'];
  if (rawMeta !== undefined && rawMeta !== null) {
    if (!isPlainObject(rawMeta)) throw new CtsError(`${where}: __metadata__ must be an object of string values`);
    for (const [k, v] of Object.entries(rawMeta)) {
      if (typeof v !== 'string') throw new CtsError(`${where}: __metadata__ key "${k}" has a ${typeof v} value, expected a string`);
      metadata[k] = v;
    }
  }

  const dataStart = 8 + hlen;
  const dataLen = bytes.byteLength - dataStart;
  const tensors = new Map<string, HostTensor>();
  for (const [key, info] of Object.entries(header)) {
    if (key === '__metadata__') continue;
    const at = `${where}, tensor "${key}"`;
    if (!isPlainObject(info)) throw new CtsError(`${at}: entry must be an object with dtype, shape, data_offsets`);
    const { dtype: stDtype, shape, data_offsets: offsets } = info;
    if (typeof stDtype !== 'string') throw new CtsError(`${at}: missing or non-string "dtype", expected one of ${SUPPORTED}`);
    const dtype = FROM_ST[stDtype];
    if (dtype === undefined) throw new CtsError(`${at}: unsupported dtype ${stDtype}, expected one of ${SUPPORTED}`);
    if (!Array.isArray(shape) || !shape.every(isNonNegInt)) {
      throw new CtsError(`${at}: "shape" must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegInt) || offsets[0] > offsets[1]) {
      throw new CtsError(`${at}: "data_offsets" must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    let n: number;
    try {
      n = numel(shape);
    } catch (e) {
      throw new CtsError(`${at}: ${(e as Error).message}`);
    }
    const expectedLen = n * itemSize(dtype);
    if (end - begin !== expectedLen) {
      throw new CtsError(`${at}: data_offsets [${begin},${end}] span ${end - begin} bytes, expected ${expectedLen} for shape [${shape.join(',')}] ${stDtype}`);
    }
    if (end > dataLen) {
      throw new CtsError(`${at}: file is truncated, tensor data ends at byte ${end} but the data section has only ${dataLen} bytes`);
    }
    tensors.set(key, { dtype, shape: [...shape], data: typedArrayFromBytes(dtype, bytes, dataStart + begin, n) });
  }
  return { tensors, metadata };
}

function toEntries(tensors: Map<string, HostTensor> | Record<string, HostTensor>): [string, HostTensor][] {
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  // Deterministic output regardless of insertion order: sort by key (code-unit order).
  return entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Serializes tensors (sorted by key) and optional string metadata to safetensors bytes. */
export function serializeSafetensors(
  tensors: Map<string, HostTensor> | Record<string, HostTensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  const entries = toEntries(tensors);
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new CtsError(`safetensors metadata key "${k}" has a ${typeof v} value, expected a string`);
    }
    header['__metadata__'] = { ...metadata };
  }
  let offset = 0;
  for (const [key, t] of entries) {
    if (key === '__metadata__' || key === '') throw new CtsError(`invalid safetensors tensor name ${JSON.stringify(key)}`);
    try {
      validateHostTensor(t, `tensor "${key}"`);
    } catch (e) {
      throw new CtsError(`cannot serialize safetensors: ${(e as Error).message}`);
    }
    const len = t.data.byteLength;
    header[key] = { dtype: TO_ST[t.dtype], shape: t.shape, data_offsets: [offset, offset + len] };
    offset += len;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  // Pad with spaces so the data section starts 8-byte aligned, as the reference implementation does.
  const hlen = json.byteLength + ((8 - (json.byteLength % 8)) % 8);
  const out = new Uint8Array(8 + hlen + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(hlen), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.byteLength, 8 + hlen);
  let pos = 8 + hlen;
  for (const [, t] of entries) {
    out.set(tensorBytes(t), pos);
    pos += t.data.byteLength;
  }
  return out;
}

/** What the model expects for one parameter. */
export interface ExpectedParam {
  shape: readonly number[];
  dtype?: DType;
}

/** Options for {@link loadStateDict}. */
export interface LoadStateDictOptions {
  /** Exact keys, or prefixes ending with '.', that may be present in the file but are not used. */
  allowUnexpected?: string[];
  /** File name used in the error message. */
  source?: string;
}

const LIST_CAP = 5;

function summarize(label: string, items: string[]): string {
  const shown = items.slice(0, LIST_CAP).join(', ');
  const more = items.length > LIST_CAP ? `, …and ${items.length - LIST_CAP} more` : '';
  return `${label} ${items.length} (${shown}${more})`;
}

/** Strictly matches a file's tensors to the model's parameters; throws one CtsError listing every missing/unexpected/mismatched key. */
export function loadStateDict(
  expected: Map<string, ExpectedParam>,
  actual: Map<string, HostTensor>,
  opts: LoadStateDictOptions = {},
): Map<string, HostTensor> {
  const allowed = opts.allowUnexpected ?? [];
  const isAllowed = (k: string): boolean => allowed.some((a) => a === k || (a.endsWith('.') && k.startsWith(a)));
  const missing: string[] = [];
  const shapeBad: string[] = [];
  const dtypeBad: string[] = [];
  const result = new Map<string, HostTensor>();
  for (const [key, want] of expected) {
    const t = actual.get(key);
    if (t === undefined) {
      missing.push(key);
      continue;
    }
    const sameShape = t.shape.length === want.shape.length && t.shape.every((d, i) => d === want.shape[i]);
    if (!sameShape) {
      shapeBad.push(`${key}: file [${t.shape.join(',')}], model expects [${want.shape.join(',')}]`);
      continue;
    }
    if (want.dtype !== undefined && t.dtype !== want.dtype) {
      dtypeBad.push(`${key}: file ${t.dtype}, model expects ${want.dtype}`);
      continue;
    }
    result.set(key, t);
  }
  const unexpected = [...actual.keys()].filter((k) => !expected.has(k) && !isAllowed(k));
  const problems: string[] = [];
  if (missing.length) problems.push(summarize('missing', missing));
  if (unexpected.length) problems.push(summarize('unexpected', unexpected));
  if (shapeBad.length) problems.push(summarize('shape mismatch', shapeBad));
  if (dtypeBad.length) problems.push(summarize('dtype mismatch', dtypeBad));
  if (problems.length) {
    const what = opts.source !== undefined ? `weights file ${opts.source}` : 'weights';
    throw new CtsError(`${what} does not match the model: ${problems.join(', ')}`);
  }
  return result;
}
