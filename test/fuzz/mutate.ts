// The seeded byte mutator and runner of the fuzz suite. Every mutated input comes from (suite seed,
// input index) alone, so a failure names the seed that reproduces it. The mutations are the ones a
// damaged download or a hostile file produces: truncation, bit flips, rewritten length fields,
// reordered chunks, inserted and deleted bytes.
import { CtsError } from '../../src/base/errors.js';
import { seeded } from '../helpers/hostile.js';

export type Rng = () => number;

/** Where a format keeps its length fields: byte offsets and the field width and byte order. */
export type LengthFields = (b: Uint8Array) => { offset: number; width: 2 | 4 | 8; le: boolean }[];

/** Ranges [start, end) of a format's reorderable parts (PNG chunks, zip members). */
export type Chunks = (b: Uint8Array) => [number, number][];

export interface Format {
  lengths?: LengthFields;
  chunks?: Chunks;
}

const int = (r: Rng, n: number) => Math.floor(r() * n);

function writeLength(out: Uint8Array, f: { offset: number; width: 2 | 4 | 8; le: boolean }, r: Rng, size: number): void {
  const max = 2 ** (8 * Math.min(f.width, 6)) - 1;
  const choices = [0, 1, size - 1, size, size + 1, 2 ** 31 - 1, max, int(r, max), int(r, size * 2 + 1)];
  let v = BigInt(Math.max(0, Math.min(max, choices[int(r, choices.length)]!)));
  if (f.width === 8 && r() < 0.3) v = 0xffffffffffffffffn;
  for (let i = 0; i < f.width && f.offset + i < out.length; i++) {
    const byte = Number((v >> BigInt(8 * i)) & 0xffn);
    out[f.offset + (f.le ? i : f.width - 1 - i)] = byte;
  }
}

/** One mutation of `src` chosen by `r` (the input is never modified). */
export function mutate(src: Uint8Array, r: Rng, fmt: Format = {}): Uint8Array {
  const kind = int(r, 6);
  const out = Uint8Array.from(src);
  if (kind === 0) return out.subarray(0, int(r, src.length));
  if (kind === 1) {
    for (let n = 1 + int(r, 8); n > 0; n--) {
      // flips concentrate in the header, where formats keep what they trust
      const at = r() < 0.5 ? int(r, Math.min(src.length, 256)) : int(r, src.length);
      out[at]! ^= 1 << int(r, 8);
    }
    return out;
  }
  if (kind === 2) {
    const fields = fmt.lengths?.(src) ?? [];
    const f = fields.length && r() < 0.8 ? fields[int(r, fields.length)]! : { offset: int(r, Math.max(1, src.length - 4)), width: 4 as const, le: r() < 0.5 };
    writeLength(out, f, r, src.length);
    return out;
  }
  if (kind === 3) {
    const parts = fmt.chunks?.(src) ?? [];
    if (parts.length >= 2) {
      const i = int(r, parts.length), j = int(r, parts.length);
      const [a, b] = i < j ? [parts[i]!, parts[j]!] : [parts[j]!, parts[i]!];
      if (a[1] <= b[0]) return concat(src.subarray(0, a[0]), src.subarray(b[0], b[1]), src.subarray(a[1], b[0]), src.subarray(a[0], a[1]), src.subarray(b[1]));
    }
    const len = 1 + int(r, Math.max(1, src.length >> 3)), x = int(r, src.length - len), y = int(r, src.length - len);
    out.set(src.subarray(x, x + len), Math.max(0, y));
    return out;
  }
  if (kind === 4) {
    const at = int(r, src.length), n = 1 + int(r, 64);
    return concat(src.subarray(0, at), Uint8Array.from({ length: n }, () => int(r, 256)), src.subarray(at));
  }
  const at = int(r, src.length);
  return concat(src.subarray(0, at), src.subarray(Math.min(src.length, at + 1 + int(r, 64))));
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** PNG: each chunk's 4-byte big-endian length; chunks after the signature. */
export const PNG: Format = {
  lengths: (b) => pngChunks(b).map(([s]) => ({ offset: s, width: 4, le: false })),
  chunks: (b) => pngChunks(b),
};

function pngChunks(b: Uint8Array): [number, number][] {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength), out: [number, number][] = [];
  for (let o = 8; o + 12 <= b.length; ) {
    const end = o + 12 + v.getUint32(o);
    if (end > b.length) break;
    out.push([o, end]);
    o = end;
  }
  return out;
}

/** JPEG: the 2-byte big-endian length after each marker; segments between markers. */
export const JPEG: Format = {
  lengths: (b) => jpegSegments(b).map(([s]) => ({ offset: s + 2, width: 2, le: false })),
  chunks: jpegSegments,
};

function jpegSegments(b: Uint8Array): [number, number][] {
  const out: [number, number][] = [];
  for (let o = 2; o + 4 <= b.length && b[o] === 0xff && b[o + 1] !== 0xda; ) {
    const end = o + 2 + ((b[o + 2]! << 8) | b[o + 3]!);
    out.push([o, end]);
    o = end;
  }
  return out;
}

/** Zip (npz, .pth): local header sizes and name lengths, central directory sizes and offsets; members as chunks. */
export const ZIP: Format = {
  lengths: (b) => {
    const f: ReturnType<LengthFields> = [];
    for (let o = 0; o + 4 <= b.length; o++) {
      if (b[o] !== 0x50 || b[o + 1] !== 0x4b) continue;
      if (b[o + 2] === 3 && b[o + 3] === 4) for (const k of [18, 22]) f.push({ offset: o + k, width: 4, le: true }), f.push({ offset: o + 26, width: 2, le: true });
      if (b[o + 2] === 1 && b[o + 3] === 2) for (const k of [20, 24, 42]) f.push({ offset: o + k, width: 4, le: true });
      if (b[o + 2] === 5 && b[o + 3] === 6) for (const k of [10, 12, 16]) f.push({ offset: o + k, width: k === 10 ? 2 : 4, le: true });
    }
    return f;
  },
  chunks: (b) => {
    const starts: number[] = [];
    for (let o = 0; o + 4 <= b.length; o++) if (b[o] === 0x50 && b[o + 1] === 0x4b && b[o + 2] === 3 && b[o + 3] === 4) starts.push(o);
    return starts.map((s, i) => [s, starts[i + 1] ?? s + 30] as [number, number]);
  },
};

/** safetensors: the 8-byte little-endian header length. */
export const SAFETENSORS: Format = { lengths: () => [{ offset: 0, width: 8, le: true }] };

/** npy: the 2-byte (v1) header length after the magic and version. */
export const NPY: Format = { lengths: () => [{ offset: 8, width: 2, le: true }, { offset: 8, width: 4, le: true }] };

/** Outcome counts of a fuzz run. */
export interface FuzzStats {
  accepted: number;
  refused: number;
}

/** Bytes of memory a single input may leave allocated (typed arrays and buffers). */
export const MEMORY_BOUND = 768 << 20;
/** Longest a single input may take. */
const INPUT_TIMEOUT_MS = 10_000;

/**
 * Runs `count` mutations of the `seeds` through `run`. Success and CtsError are the only accepted
 * outcomes; any other exception, an input that does not settle in time, or memory left beyond
 * MEMORY_BOUND fails with the input's seed.
 */
export async function fuzz(name: string, suiteSeed: number, count: number, seeds: Uint8Array[], fmt: Format, run: (bytes: Uint8Array) => Promise<unknown>): Promise<FuzzStats> {
  const stats: FuzzStats = { accepted: 0, refused: 0 };
  for (let i = 0; i < count; i++) {
    const seed = suiteSeed * 100_000 + i;
    const r = seeded(seed);
    const input = mutate(seeds[Math.floor(r() * seeds.length)]!, r, fmt);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([run(input), new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`no outcome after ${INPUT_TIMEOUT_MS} ms`)), INPUT_TIMEOUT_MS)))]);
      stats.accepted++;
    } catch (e) {
      if (!(e instanceof CtsError) || e.message.includes('\n')) {
        throw new Error(`${name}: mutated input seed ${seed} gave ${e instanceof CtsError ? 'a multi-line CtsError' : 'an exception other than CtsError'}: ${(e as Error)?.stack ?? String(e)}`);
      }
      stats.refused++;
    } finally {
      clearTimeout(timer);
    }
    const m = process.memoryUsage();
    if (m.arrayBuffers > MEMORY_BOUND) throw new Error(`${name}: mutated input seed ${seed} left ${(m.arrayBuffers / 2 ** 20).toFixed(0)} MiB of buffers allocated`);
  }
  return stats;
}
