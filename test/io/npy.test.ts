import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CtsError } from '../../src/base/errors.js';
import { parseNpy, readNpy, serializeNpy, writeNpy } from '../../src/io/npy.js';
import type { HostTensor } from '../../src/base/tensor.js';
import { hostTensor } from '../../src/base/tensor.js';

const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/tiny96/', import.meta.url));

/** Builds a .npy buffer with an arbitrary header string (padded to 64 like numpy) and data bytes. */
function rawNpy(header: string, data: Uint8Array, major = 1): Uint8Array {
  const lenSize = major === 1 ? 2 : 4;
  const enc = new TextEncoder().encode(header);
  const pad = (64 - ((8 + lenSize + enc.length + 1) % 64)) % 64;
  const hlen = enc.length + pad + 1;
  const out = new Uint8Array(8 + lenSize + hlen + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, 0]);
  const v = new DataView(out.buffer);
  if (major === 1) v.setUint16(8, hlen, true);
  else v.setUint32(8, hlen, true);
  out.set(enc, 8 + lenSize);
  out.fill(0x20, 8 + lenSize + enc.length, 8 + lenSize + hlen - 1);
  out[8 + lenSize + hlen - 1] = 0x0a;
  out.set(data, 8 + lenSize + hlen);
  return out;
}

function assertCts(fn: () => unknown, ...phrases: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CtsError, `expected CtsError, got ${String(e)}`);
    assert.ok(!e.message.includes('\n'), 'message must be one line');
    for (const p of phrases) assert.ok(e.message.includes(p), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(p)}`);
    return true;
  });
}

const samples: HostTensor[] = [
  hostTensor('float32', [2, 3], Float32Array.from([1, 2, 3, 4, 5, 6])),
  hostTensor('float64', [], Float64Array.from([3.5])),
  hostTensor('int64', [4], BigInt64Array.from([1n, -2n, 3n, 1n << 40n])),
  hostTensor('int32', [0, 3]),
  hostTensor('uint8', [2, 1, 2], Uint8Array.from([0, 9, 200, 255])),
  hostTensor('bool', [3], Uint8Array.from([1, 0, 1])),
];

describe('npy round trip', () => {
  it('round-trips every dtype, a scalar and a 0-sized array', () => {
    for (const t of samples) {
      const back = parseNpy(serializeNpy(t));
      assert.equal(back.dtype, t.dtype);
      assert.deepEqual(back.shape, t.shape);
      assert.equal(back.data.constructor, t.data.constructor);
      assert.deepEqual(back.data, t.data);
    }
  });

  it('writes v1.0 with a newline-terminated header and 64-byte-aligned data, byte-identical to numpy', () => {
    for (const t of samples) {
      const b = serializeNpy(t);
      assert.deepEqual([...b.subarray(0, 8)], [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
      const hlen = b[8]! | (b[9]! << 8);
      assert.equal((10 + hlen) % 64, 0);
      assert.equal(b[10 + hlen - 1], 0x0a);
      assert.equal(b.length, 10 + hlen + t.data.byteLength);
    }
    // Exactly what np.save(np.arange(1, 7, dtype='<f4').reshape(2, 3)) writes.
    const dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    const header = new TextDecoder().decode(serializeNpy(samples[0]!).subarray(10, 128));
    assert.equal(header, dict + ' '.repeat(128 - 10 - dict.length - 1) + '\n');
    assert.match(new TextDecoder().decode(serializeNpy(samples[1]!).subarray(10, 128)), /'shape': \(\), \} +\n$/);
    assert.match(new TextDecoder().decode(serializeNpy(samples[2]!).subarray(10, 128)), /'descr': '<i8'.*'shape': \(4,\), \}/);
    assert.match(new TextDecoder().decode(serializeNpy(samples[5]!).subarray(10, 128)), /'descr': '\|b1'/);
  });

  it('reads v2.0 and v3.0 files and tolerant header spellings', () => {
    const i32 = new Uint8Array(Int32Array.from([1, 2, 3, 4, 5, 6]).buffer);
    const v2 = parseNpy(rawNpy("{'descr': '<i4', 'fortran_order': False, 'shape': (3, 2), }", i32, 2));
    assert.deepEqual(v2.shape, [3, 2]);
    assert.deepEqual([...v2.data], [1, 2, 3, 4, 5, 6]);
    const v3 = parseNpy(rawNpy('{"shape": [6], "descr": "<i4", "fortran_order": False}', i32, 3));
    assert.deepEqual(v3.shape, [6]);
    const longs = parseNpy(rawNpy("{'descr':'<u1','fortran_order':False,'shape':(2L, 3L)}", new Uint8Array(6)));
    assert.equal(longs.dtype, 'uint8');
    assert.deepEqual(longs.shape, [2, 3]);
  });
});

describe('npy fixtures', () => {
  it('reads input.npy as float32 [2,3,96,96] and re-serialises it byte for byte', async () => {
    const path = join(FIXTURES, 'input.npy');
    const t = await readNpy(path);
    assert.equal(t.dtype, 'float32');
    assert.deepEqual(t.shape, [2, 3, 96, 96]);
    assert.ok(t.data instanceof Float32Array);
    assert.equal(t.data.length, 2 * 3 * 96 * 96);
    assert.ok([...t.data].every((x) => Number.isFinite(x)));
    assert.deepEqual(serializeNpy(t), new Uint8Array(await readFile(path)));
  });

  it('reads cts/mask_scale2.npy as uint8 [2,3,3]', async () => {
    const t = await readNpy(join(FIXTURES, 'cts', 'mask_scale2.npy'));
    assert.equal(t.dtype, 'uint8');
    assert.deepEqual(t.shape, [2, 3, 3]);
    assert.equal(t.data.length, 18);
  });
});

describe('npy corrupt input', () => {
  const f32 = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";

  it('reports truncated data with sizes, shape and descr', async () => {
    const bytes = await readFile(join(FIXTURES, 'input.npy'));
    assertCts(() => parseNpy(bytes.subarray(0, bytes.length - 4), 'in.npy'), 'in.npy', `file has ${bytes.length - 128 - 4} bytes of data, expected ${2 * 3 * 96 * 96 * 4} for shape [2,3,96,96] <f4`, 'truncated');
    assertCts(() => parseNpy(bytes.subarray(0, 50), 'cut.npy'), 'cut.npy', 'truncated', 'header length');
    assertCts(() => parseNpy(rawNpy(f32, new Uint8Array(28)), 'extra.npy'), 'extra.npy', 'file has 28 bytes of data, expected 24');
  });

  it('rejects a bad magic', () => {
    assertCts(() => parseNpy(new TextEncoder().encode('PK\x03\x04 this is a zip file'), 'x.npy'), 'x.npy', 'bad magic', 'NUMPY');
    assertCts(() => parseNpy(new Uint8Array(3), 'tiny.npy'), 'tiny.npy', 'bad magic');
  });

  it('rejects fortran order, big-endian, object and unsupported dtypes', () => {
    const d = new Uint8Array(24);
    assertCts(() => parseNpy(rawNpy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", d), 'f.npy'), 'f.npy', 'fortran_order=True is not supported', 'expected C order');
    assertCts(() => parseNpy(rawNpy("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", d), 'be.npy'), 'be.npy', 'big-endian', "expected one of '<f4'");
    assertCts(() => parseNpy(rawNpy("{'descr': '|O', 'fortran_order': False, 'shape': (3,), }", d), 'o.npy'), 'o.npy', 'object arrays');
    assertCts(() => parseNpy(rawNpy("{'descr': '<f2', 'fortran_order': False, 'shape': (3,), }", d), 'h.npy'), 'h.npy', "unsupported dtype descr '<f2'", "'|b1'");
    assertCts(() => parseNpy(rawNpy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }", d)), 'structured');
  });

  it('rejects malformed headers', () => {
    const d = new Uint8Array(24);
    assertCts(() => parseNpy(rawNpy("{'descr': '<f4', 'shape': (2, 3), }", d), 'k.npy'), 'k.npy', 'expected exactly descr, fortran_order, shape');
    assertCts(() => parseNpy(rawNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)", d), 's.npy'), 's.npy', 'cannot parse header');
    assertCts(() => parseNpy(rawNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }", d)), 'shape must be a tuple of non-negative integers');
    assertCts(() => parseNpy(rawNpy("__import__('os')", d)), 'cannot parse header');
  });

  it('names the path of a non-existent file', async () => {
    await assert.rejects(readNpy('/nonexistent/x.npy'), (e: unknown) => e instanceof CtsError && /npy file \/nonexistent\/x\.npy: no such file/.test(e.message));
  });
});

describe('writeNpy', () => {
  it('writes atomically and leaves the target untouched on failure', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cts-npy-'));
    try {
      const target = join(dir, 'a.npy');
      await writeNpy(target, samples[2]!);
      assert.deepEqual(await readNpy(target), samples[2]);
      await writeFile(target, 'precious');
      const bad = { dtype: 'int32', shape: [2], data: new Float32Array(2) } as HostTensor;
      await assert.rejects(writeNpy(target, bad), (e: unknown) => e instanceof CtsError && e.message.includes('needs a Int32Array'));
      assert.equal(await readFile(target, 'utf8'), 'precious');
      assert.deepEqual(await readdir(dir), ['a.npy']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
