// Host-side (CPU) tensor type shared across the project: a dtype tag, a shape and a flat C-order typed array.

/**
 * Element types a host tensor can hold. `bool` is stored one byte per element (0/1) in a Uint8Array;
 * `float16` as its IEEE half-precision bit patterns in a Uint16Array (storage only: weights kept at half
 * size in a file and cast to float32 in the graph; see toFloat16Bits).
 */
export type DType = 'float32' | 'float64' | 'int64' | 'int32' | 'uint8' | 'int8' | 'bool' | 'float16';

/** Any typed array that can back a HostTensor. */
export type TypedArrayFor = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array | Int8Array | Uint16Array;

/** A dense, C-order (row-major) tensor living in host memory. */
export interface HostTensor {
  dtype: DType;
  shape: number[];
  data: Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array | Int8Array | Uint16Array;
}

type TypedArrayCtor =
  | Float32ArrayConstructor
  | Float64ArrayConstructor
  | BigInt64ArrayConstructor
  | Int32ArrayConstructor
  | Uint8ArrayConstructor
  | Int8ArrayConstructor
  | Uint16ArrayConstructor;

const CTORS: Record<DType, TypedArrayCtor> = {
  float32: Float32Array,
  float64: Float64Array,
  int64: BigInt64Array,
  int32: Int32Array,
  uint8: Uint8Array,
  int8: Int8Array,
  bool: Uint8Array,
  float16: Uint16Array,
};

/** All supported dtypes, in a stable order. */
export const DTYPES: readonly DType[] = ['float32', 'float64', 'int64', 'int32', 'uint8', 'int8', 'bool', 'float16'];

/** True when `s` names a supported DType. */
export function isDType(s: unknown): s is DType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(CTORS, s);
}

/** Size in bytes of one element of `dtype`. */
export function itemSize(dtype: DType): number {
  return CTORS[dtype].BYTES_PER_ELEMENT;
}

/** Number of elements of a tensor with this shape (1 for a scalar `[]`). Throws on a malformed shape. */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new Error(`invalid shape [${shape.join(',')}]: dimensions must be non-negative integers`);
    }
    n *= d;
  }
  if (!Number.isSafeInteger(n)) throw new Error(`invalid shape [${shape.join(',')}]: element count overflows`);
  return n;
}

/** Allocates a zero-filled typed array of `n` elements for `dtype`. */
export function allocData(dtype: DType, n: number): TypedArrayFor {
  return new CTORS[dtype](n);
}

/** Copies `length` bytes starting at `bytes[offset]` into a new, properly aligned typed array for `dtype` (host byte order). */
export function typedArrayFromBytes(dtype: DType, bytes: Uint8Array, offset: number, count: number): TypedArrayFor {
  const out = allocData(dtype, count);
  // Copy instead of viewing: the source offset is rarely aligned to the element size.
  new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(
    bytes.subarray(offset, offset + count * itemSize(dtype)),
  );
  return out;
}

/** Byte view (no copy) over a tensor's data. */
export function tensorBytes(t: HostTensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/** Throws an Error describing why `t` is not a consistent HostTensor (unknown dtype, bad shape, wrong array type or length). */
export function validateHostTensor(t: HostTensor, what = 'tensor'): void {
  if (!isDType(t.dtype)) throw new Error(`${what}: unknown dtype ${JSON.stringify(t.dtype)}, expected one of ${DTYPES.join('/')}`);
  if (!Array.isArray(t.shape)) throw new Error(`${what}: shape must be an array of non-negative integers`);
  let n: number;
  try {
    n = numel(t.shape);
  } catch (e) {
    throw new Error(`${what}: ${(e as Error).message}`);
  }
  const ctor = CTORS[t.dtype];
  // instanceof is exact enough: Int8Array/Uint8ClampedArray are not Uint8Array subclasses, Node's Buffer is (and is fine).
  if (!(t.data instanceof ctor)) {
    const got = (t.data as { constructor?: { name?: string } } | null)?.constructor?.name ?? typeof t.data;
    throw new Error(`${what}: dtype ${t.dtype} needs a ${ctor.name}, got ${got}`);
  }
  if (t.data.length !== n) {
    throw new Error(`${what}: data has ${t.data.length} elements, expected ${n} for shape [${t.shape.join(',')}] ${t.dtype}`);
  }
}

/** Creates a HostTensor; allocates zeros when `data` is omitted, otherwise checks its type and length against dtype/shape. */
export function hostTensor(dtype: DType, shape: readonly number[], data?: TypedArrayFor): HostTensor {
  if (!isDType(dtype)) throw new Error(`unknown dtype ${JSON.stringify(dtype)}, expected one of ${DTYPES.join('/')}`);
  const n = numel(shape);
  const t: HostTensor = { dtype, shape: [...shape], data: data ?? allocData(dtype, n) };
  validateHostTensor(t);
  return t;
}
