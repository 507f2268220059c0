import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CtsError } from '../../src/base/errors.js';
import { writeFileAtomic, writeFileAtomicSync } from '../../src/io/fs.node.js';
import { loadStateDict, parseSafetensors, serializeSafetensors } from '../../src/io/safetensors.js';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.node.js';
import type { HostTensor } from '../../src/base/tensor.js';
import { hostTensor, numel } from '../../src/base/tensor.js';

const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/tiny96/', import.meta.url));
const WEIGHTS = join(FIXTURES, 'weights.safetensors');

/** Builds a raw safetensors buffer from a header object (or raw header text) and a data section. */
function rawSafetensors(header: unknown, data = new Uint8Array(0)): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function headerOf(bytes: Uint8Array): { len: number; text: string } {
  const len = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return { len, text: new TextDecoder().decode(bytes.subarray(8, 8 + len)) };
}

function assertCts(fn: () => unknown, ...phrases: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CtsError, `expected CtsError, got ${String(e)}`);
    assert.equal(e.name, 'CtsError');
    assert.ok(!e.message.includes('\n'), 'message must be one line');
    for (const p of phrases) assert.ok(e.message.includes(p), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(p)}`);
    return true;
  });
}

async function withTmp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'cts-io-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function sampleTensors(): Record<string, HostTensor> {
  return {
    'z.f32': hostTensor('float32', [2, 3], Float32Array.from([1.5, -2, 3, 4, 5e-8, -Infinity])),
    'a.f64': hostTensor('float64', [3], Float64Array.from([Math.PI, -0, 1e300])),
    'm.i64': hostTensor('int64', [2, 2], BigInt64Array.from([1n, -2n, 2n ** 62n, -(2n ** 63n)])),
    'b.i32': hostTensor('int32', [1, 1, 3], Int32Array.from([-7, 0, 2147483647])),
    'u8': hostTensor('uint8', [4], Uint8Array.from([0, 1, 254, 255])),
    'flag': hostTensor('bool', [2], Uint8Array.from([1, 0])),
    'scalar': hostTensor('float32', [], Float32Array.from([42])),
    'empty': hostTensor('int32', [0, 5]),
  };
}

describe('tensor helpers', () => {
  it('hostTensor allocates zeros and validates data', () => {
    const t = hostTensor('int64', [2, 3]);
    assert.ok(t.data instanceof BigInt64Array);
    assert.equal(t.data.length, 6);
    assert.equal(hostTensor('bool', [3]).data.constructor, Uint8Array);
    assert.equal(numel([]), 1);
    assert.equal(numel([4, 0, 2]), 0);
    assert.throws(() => hostTensor('float32', [2, 2], new Float32Array(3)), /3 elements, expected 4/);
    assert.throws(() => hostTensor('float32', [2], new Float64Array(2)), /needs a Float32Array, got Float64Array/);
    assert.throws(() => hostTensor('float32', [-1]), /non-negative/);
  });
});

describe('safetensors round trip', () => {
  it('round-trips every dtype, a scalar, a 0-sized tensor and metadata', () => {
    const tensors = sampleTensors();
    const bytes = serializeSafetensors(tensors, { d_model: '64', note: 'ünïcode' });
    const back = parseSafetensors(bytes);
    assert.deepEqual(back.metadata, { d_model: '64', note: 'ünïcode' });
    assert.deepEqual([...back.tensors.keys()].sort(), Object.keys(tensors).sort());
    for (const [k, t] of Object.entries(tensors)) {
      const got = back.tensors.get(k)!;
      assert.equal(got.dtype, t.dtype, k);
      assert.deepEqual(got.shape, t.shape, k);
      assert.equal(got.data.constructor, t.data.constructor, k);
      assert.deepEqual(got.data, t.data, k);
    }
    assert.deepEqual(back.tensors.get('scalar')!.shape, []);
    assert.equal(back.tensors.get('empty')!.data.length, 0);
  });

  it('accepts a Map, writes keys sorted and pads the header with spaces to 8 bytes', () => {
    const map = new Map(Object.entries(sampleTensors()));
    const bytes = serializeSafetensors(map);
    const { len, text } = headerOf(bytes);
    assert.equal((8 + len) % 8, 0);
    assert.match(text, /^\{.*\} *$/);
    const keys = Object.keys(JSON.parse(text));
    assert.deepEqual(keys, [...keys].sort());
    assert.ok(!keys.includes('__metadata__'));
    const info = JSON.parse(text) as Record<string, { data_offsets: [number, number] }>;
    // Offsets are contiguous in sorted order and cover the whole data section.
    let off = 0;
    for (const k of keys) {
      assert.equal(info[k]!.data_offsets[0], off);
      off = info[k]!.data_offsets[1];
    }
    assert.equal(off, bytes.length - 8 - len);
    assert.deepEqual(parseSafetensors(bytes).metadata, {});
  });

  it('returns aligned copies even when the data section is misaligned', () => {
    const f = Float64Array.from([1, 2]);
    const raw = rawSafetensors({ x: { dtype: 'F64', shape: [2], data_offsets: [0, 16] } }, new Uint8Array(f.buffer));
    assert.notEqual((8 + headerOf(raw).len) % 8, 0);
    const t = parseSafetensors(raw).tensors.get('x')!;
    assert.ok(t.data instanceof Float64Array);
    assert.deepEqual([...t.data], [1, 2]);
  });

  it('tolerates unsorted and overlapping ranges whose lengths are right', () => {
    const data = Uint8Array.from([1, 2, 3, 4]);
    const raw = rawSafetensors({ b: { dtype: 'U8', shape: [2], data_offsets: [2, 4] }, a: { dtype: 'U8', shape: [3], data_offsets: [0, 3] } }, data);
    const { tensors } = parseSafetensors(raw);
    assert.deepEqual([...tensors.get('a')!.data], [1, 2, 3]);
    assert.deepEqual([...tensors.get('b')!.data], [3, 4]);
  });
});

describe('safetensors fixture', () => {
  it('reads test/fixtures/tiny96/weights.safetensors', async () => {
    const { tensors, metadata } = await readSafetensors(WEIGHTS);
    assert.equal(tensors.size, 65);
    const pos = tensors.get('encoder.pos_embed')!;
    assert.equal(pos.dtype, 'float32');
    assert.deepEqual(pos.shape, [1, 37, 64]);
    assert.equal(pos.data.length, 37 * 64);
    assert.ok([...(pos.data as Float32Array)].every(Number.isFinite));
    assert.equal(metadata['d_model'], '64');
    // Re-serialising preserves every tensor bit for bit.
    const again = parseSafetensors(serializeSafetensors(tensors, metadata));
    assert.deepEqual(again.metadata, metadata);
    for (const [k, t] of tensors) assert.deepEqual(again.tensors.get(k), t, k);
  });
});

describe('safetensors corrupt input', () => {
  it('rejects a file shorter than 8 bytes', () => {
    assertCts(() => parseSafetensors(new Uint8Array(5), 'short.st'), 'short.st', 'truncated', 'expected at least 8');
  });

  it('reports a truncated fixture naming the path and the tensor', async () => {
    const bytes = await readFile(WEIGHTS);
    assertCts(() => parseSafetensors(bytes.subarray(0, bytes.length - 100), WEIGHTS), WEIGHTS, 'truncated', 'tensor "');
    assertCts(() => parseSafetensors(bytes.subarray(0, 1000), 'cut.safetensors'), 'cut.safetensors', 'header length', 'exceeds');
  });

  it('rejects a header length larger than the file', () => {
    const raw = rawSafetensors({});
    new DataView(raw.buffer).setBigUint64(0, 2n ** 40n, true);
    assertCts(() => parseSafetensors(raw, 'big.st'), 'big.st', 'header length 1099511627776 exceeds');
  });

  it('rejects bad JSON and non-object headers', () => {
    assertCts(() => parseSafetensors(rawSafetensors('{"a": '), 'bad.st'), 'bad.st', 'not valid JSON');
    assertCts(() => parseSafetensors(rawSafetensors('[1,2]'), 'arr.st'), 'arr.st', 'must be a JSON object');
  });

  it('rejects unsupported dtypes naming the key and the supported list', () => {
    const raw = rawSafetensors({ 'w.half': { dtype: 'F16', shape: [2], data_offsets: [0, 4] } }, new Uint8Array(4));
    assertCts(() => parseSafetensors(raw, 'h.st'), 'h.st', '"w.half"', 'unsupported dtype F16', 'expected one of F32/F64/I64/I32/U8/I8/BOOL');
    const bf = rawSafetensors({ b: { dtype: 'BF16', shape: [1], data_offsets: [0, 2] } }, new Uint8Array(2));
    assertCts(() => parseSafetensors(bf), 'unsupported dtype BF16');
  });

  it('rejects missing/bad fields and wrong byte lengths', () => {
    const d = new Uint8Array(16);
    assertCts(() => parseSafetensors(rawSafetensors({ k: { shape: [1], data_offsets: [0, 4] } }, d), 'f.st'), 'f.st', '"k"', '"dtype"');
    assertCts(() => parseSafetensors(rawSafetensors({ k: { dtype: 'F32', shape: [1.5], data_offsets: [0, 4] } }, d)), '"shape"');
    assertCts(() => parseSafetensors(rawSafetensors({ k: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, d)), '"data_offsets"');
    assertCts(() => parseSafetensors(rawSafetensors({ k: { dtype: 'F32', shape: [1] } }, d)), '"data_offsets"');
    assertCts(
      () => parseSafetensors(rawSafetensors({ k: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, d), 'len.st'),
      'len.st', '"k"', 'span 4 bytes, expected 8 for shape [2] F32',
    );
    assertCts(() => parseSafetensors(rawSafetensors({ __metadata__: { a: 1 } }), 'm.st'), 'm.st', '__metadata__', 'expected a string');
    assertCts(() => parseSafetensors(rawSafetensors('{"k": 3}')), '"k"', 'entry must be an object');
  });

  it('names the path of a non-existent file', async () => {
    await assert.rejects(readSafetensors('/nonexistent/dir/w.safetensors'), (e: unknown) => {
      assert.ok(e instanceof CtsError);
      assert.match(e.message, /\/nonexistent\/dir\/w\.safetensors: no such file/);
      return true;
    });
  });
});

describe('atomic writes', () => {
  it('writeSafetensors leaves only the target file and overwrites atomically', async () => {
    await withTmp(async (dir) => {
      const target = join(dir, 'w.safetensors');
      await writeFile(target, 'old');
      await writeSafetensors(target, sampleTensors(), { k: 'v' });
      assert.deepEqual(await readdir(dir), ['w.safetensors']);
      const back = await readSafetensors(target);
      assert.equal(back.metadata['k'], 'v');
      assert.equal(back.tensors.size, Object.keys(sampleTensors()).length);
    });
  });

  it('leaves the target untouched when serialisation throws', async () => {
    await withTmp(async (dir) => {
      const target = join(dir, 'w.safetensors');
      await writeFile(target, 'precious');
      const bad = { x: { dtype: 'float32', shape: [3], data: new Float32Array(2) } as HostTensor };
      await assert.rejects(writeSafetensors(target, bad), (e: unknown) => e instanceof CtsError && /tensor "x".*2 elements, expected 3/.test(e.message));
      await assert.rejects(writeSafetensors(target, sampleTensors(), { n: 3 as unknown as string }), CtsError);
      assert.equal(await readFile(target, 'utf8'), 'precious');
      assert.deepEqual(await readdir(dir), ['w.safetensors']);
    });
  });

  it('writeFileAtomic(Sync) write the content, and fail cleanly into a missing directory', async () => {
    await withTmp(async (dir) => {
      await writeFileAtomic(join(dir, 'a.txt'), 'hello');
      writeFileAtomicSync(join(dir, 'b.bin'), Uint8Array.from([1, 2, 3]));
      writeFileAtomicSync(join(dir, 'b.bin'), 'replaced');
      assert.equal(await readFile(join(dir, 'a.txt'), 'utf8'), 'hello');
      assert.equal(await readFile(join(dir, 'b.bin'), 'utf8'), 'replaced');
      assert.deepEqual((await readdir(dir)).sort(), ['a.txt', 'b.bin']);
      const missing = join(dir, 'nope', 'c.txt');
      await assert.rejects(writeFileAtomic(missing, 'x'), (e: unknown) => e instanceof CtsError && e.message.includes(missing));
      assert.throws(() => writeFileAtomicSync(missing, 'x'), (e: unknown) => e instanceof CtsError && e.message.includes(missing));
      // Renaming onto a directory fails after the temp file (a sibling in `dir`) exists: it must be cleaned up.
      await mkdir(join(dir, 'sub'));
      await assert.rejects(writeFileAtomic(join(dir, 'sub'), 'x'), CtsError);
      assert.throws(() => writeFileAtomicSync(join(dir, 'sub'), 'x'), CtsError);
      assert.deepEqual((await readdir(dir)).sort(), ['a.txt', 'b.bin', 'sub']);
    });
  });
});

describe('loadStateDict', () => {
  const t = (shape: number[], dtype: 'float32' | 'int64' = 'float32'): HostTensor => hostTensor(dtype, shape);

  it('returns the expected tensors and ignores allowed extras', () => {
    const expected = new Map([['a.w', { shape: [2, 3] }], ['a.b', { shape: [3], dtype: 'float32' as const }]]);
    const actual = new Map([['a.w', t([2, 3])], ['a.b', t([3])], ['aux.head.w', t([1])], ['extra', t([1])]]);
    const out = loadStateDict(expected, actual, { allowUnexpected: ['aux.', 'extra'] });
    assert.deepEqual([...out.keys()], ['a.w', 'a.b']);
    assert.equal(out.get('a.w'), actual.get('a.w'));
  });

  it('reports missing, unexpected, shape and dtype mismatches in one line', () => {
    const expected = new Map([
      ['decoder.mask_norm.weight', { shape: [64] }],
      ['decoder.mask_norm.bias', { shape: [64] }],
      ['encoder.pos_embed', { shape: [1, 50, 64] }],
      ['encoder.idx', { shape: [2], dtype: 'int64' as const }],
    ]);
    const actual = new Map([['encoder.pos_embed', t([1, 37, 64])], ['encoder.idx', t([2])], ['foo.bar', t([1])], ['aux.x', t([1])]]);
    assertCts(
      () => loadStateDict(expected, actual, { source: 'W.safetensors', allowUnexpected: ['aux'] }),
      'weights file W.safetensors does not match the model: ',
      'missing 2 (decoder.mask_norm.weight, decoder.mask_norm.bias)',
      'unexpected 2 (foo.bar, aux.x)',
      'shape mismatch 1 (encoder.pos_embed: file [1,37,64], model expects [1,50,64])',
      'dtype mismatch 1 (encoder.idx: file float32, model expects int64)',
    );
  });

  it('caps long lists', () => {
    const expected = new Map<string, { shape: number[] }>(Array.from({ length: 8 }, (_, i) => [`p${i}`, { shape: [1] }]));
    assertCts(() => loadStateDict(expected, new Map()), 'missing 8 (p0, p1, p2, p3, p4, …and 3 more)');
  });
});
