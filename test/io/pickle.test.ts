// The allow-listed unpickler on pickles written by CPython (protocols 0-5, see
// test/fixtures/import/make_fixtures.py) and on hand-assembled opcode streams.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CtsError } from '../../src/base/errors.js';
import { isPyTuple, PLAIN_DATA_GLOBALS, PY_SETSTATE, PyGlobal, pyAttributes, unpickle, unpickleAt, type UnpickleOptions } from '../../src/io/pickle.js';
import { createRng } from '../../src/base/rng.js';
import { fixture } from '../helpers/fixtures.js';

const F = (name: string) => fixture(`import/${name}`);
const bytes = (...parts: (number[] | string)[]): Uint8Array =>
  Uint8Array.from(parts.flatMap((p) => (typeof p === 'string' ? [...Buffer.from(p, 'latin1')] : p)));
const plain: UnpickleOptions = { source: 'test.pkl', globals: PLAIN_DATA_GLOBALS };

/** The VALUE dict of make_fixtures.py, as the unpickler represents it. */
function expectedValues(): Map<string, unknown> {
  return new Map<string, unknown>([
    ['none', null], ['true', true], ['false', false],
    ['int_small', 7], ['int_neg', -3], ['int_1byte', 200], ['int_2byte', 40000], ['int_4byte', -(2 ** 31)],
    ['int_big', 2n ** 70n], ['int_negbig', -(2n ** 63n)], ['int_huge', 2n ** 2100n],
    ['float', 1.5], ['float_neg', -2.25e-10],
    ['str', 'h\u00e9llo \u2713 \\u'], ['str_empty', ''],
    ['bytes', Uint8Array.of(0, 255, 97, 98)], ['bytes_empty', new Uint8Array(0)], ['bytearray', Uint8Array.of(120, 121)],
    ['list', [1, 'a', null]], ['tuple0', []], ['tuple1', [1]], ['tuple2', [1, 2]], ['tuple3', [1, 2, 3]], ['tuple4', [1, 2, 3, 4]],
    ['dict_int_keys', new Map<unknown, unknown>([[2008000002, 'a'], [-1, 'b']])],
    ['set', new Set([3])], ['frozenset', new Set([4])],
    ['shared', [[1, 2], [1, 2]]],
    ['nested', new Map([['x', [new Map([['y', [1.0, []]]])]]])],
  ]);
}

for (const proto of [0, 1, 2, 3, 4, 5]) {
  test(`protocol ${proto}: every plain type CPython writes round-trips`, () => {
    const v = unpickle(readFileSync(F(`values_p${proto}.pkl`)), plain) as Map<string, unknown>;
    assert.deepStrictEqual(v, expectedValues());
    for (const k of ['tuple0', 'tuple1', 'tuple2', 'tuple3', 'tuple4']) assert.ok(isPyTuple(v.get(k)), `${k} is a tuple`);
    assert.ok(!isPyTuple(v.get('list')), 'a list is not a tuple');
    const shared = v.get('shared') as unknown[];
    assert.equal(shared[0], shared[1], 'memoised objects keep their identity');
  });
}

test('NEWOBJ_EX, NEWOBJ and BUILD go through the allow-list; BUILD without a hook records attributes', () => {
  const made: unknown[] = [];
  const v = unpickle(readFileSync(F('objects_p4.pkl')), {
    source: 'objects_p4.pkl',
    globals: {
      'fixture.Point': (args, kwargs) => ({ x: args[0], y: kwargs?.get('y') }),
      'fixture.Plain': (args) => (made.push(args), {}),
    },
  }) as unknown[];
  assert.deepEqual(v[0], { x: 1, y: 2 });
  assert.deepEqual(made, [[]]);
  assert.deepEqual(pyAttributes(v[1] as object), new Map<string, unknown>([['a', 1], ['b', 'two']]));
});

test('BUILD calls PY_SETSTATE when the object has it', () => {
  class Thing {
    state: unknown;
    [PY_SETSTATE](s: unknown): void {
      this.state = s;
    }
  }
  // GLOBAL m.T, EMPTY_TUPLE, NEWOBJ, state [1], BUILD, STOP
  const v = unpickle(bytes([0x80, 2], 'cm\nT\n)', [0x81], ']K', [1, 0x61], 'b.'), { source: 's', globals: { 'm.T': () => new Thing() } });
  assert.deepEqual((v as Thing).state, [1]);
});

test('a global that is not allowed is refused by name, at any protocol', () => {
  const allowedWhat = 'only plain tensors and containers are allowed';
  for (const f of ['evil_reduce.pkl', 'evil_p4.pkl']) {
    assert.throws(
      () => unpickle(readFileSync(F(f)), { source: f, globals: PLAIN_DATA_GLOBALS, allowedWhat }),
      (e: Error) => e instanceof CtsError && e.message === `refusing to load posix.system from ${f}: ${allowedWhat}`,
    );
  }
  assert.throws(() => unpickle(readFileSync(F('objects_p4.pkl')), { source: 'o.pkl' }), /^CtsError: refusing to load fixture\.Point from o\.pkl: it is not on the allow-list$/);
  // EXT1 refers to a global through the copyreg extension registry
  assert.throws(() => unpickle(bytes([0x80, 2, 0x82, 1, 0x2e]), plain), /refusing to load an extension-registry global/);
});

test('protocol 0-2 Python 2 module names map to Python 3 (copy_reg -> copyreg, __builtin__ -> builtins)', () => {
  const v = unpickle(bytes([0x80, 2], 'c__builtin__\nset\n]K', [5], 'a', [0x85], 'R.'), plain);
  assert.deepEqual(v, new Set([5]));
  assert.throws(() => unpickle(bytes([0x80, 2], 'ccopy_reg\n_reconstructor\n.'), plain), /refusing to load copyreg\._reconstructor/);
});

test('rare opcodes: 8-byte lengths, LONG4, INST, OBJ, PERSID, POP_MARK, DUP, STRING escapes, FLOAT inf', () => {
  const u64 = (n: number) => [n, 0, 0, 0, 0, 0, 0, 0];
  assert.equal(unpickle(bytes([0x80, 4, 0x8d, ...u64(2)], 'hi.'), plain), 'hi');
  assert.deepEqual(unpickle(bytes([0x80, 4, 0x8e, ...u64(1), 7, 0x2e]), plain), Uint8Array.of(7));
  assert.equal(unpickle(bytes([0x80, 2, 0x8b, 2, 0, 0, 0, 0x00, 0xff, 0x2e]), plain), -256);
  const call = { 'm.C': (a: readonly unknown[]) => ['C', ...a] };
  assert.deepEqual(unpickle(bytes('(K', [1, 0x69], 'm\nC\n.'), { source: 's', globals: call }), ['C', 1]);
  assert.deepEqual(unpickle(bytes('(cm\nC\nK', [2, 0x6f, 0x2e]), { source: 's', globals: call }), ['C', 2]);
  assert.deepEqual(unpickle(bytes('Pstorage 0\n.'), { source: 's', persistentLoad: (pid) => `<${String(pid)}>` }), '<storage 0>');
  assert.deepEqual(unpickle(bytes('K', [1], '(K', [2], '12', '\x86.'), plain), [1, 1]);
  assert.equal(unpickle(bytes("S'a\\x00b\\n\\\\'\n."), plain), 'a\x00b\n\\');
  assert.equal(unpickle(bytes('Finf\n.'), plain), Infinity);
  assert.equal(unpickle(bytes('I01\n.'), plain), true);
  assert.equal(unpickle(bytes('L12345678901234567890L\n.'), plain), 12345678901234567890n);
});

test('chained pickles are read one after another (legacy torch files)', () => {
  const b = bytes([0x80, 2, 0x4b, 1, 0x2e, 0x80, 2, 0x4b, 2, 0x2e]);
  const first = unpickleAt(b, 0, plain);
  assert.deepEqual([first.value, first.end], [1, 5]);
  assert.equal(unpickleAt(b, first.end, plain).value, 2);
});

test('malformed streams give a CtsError naming the source and what is wrong', () => {
  const cases: [Uint8Array, RegExp][] = [
    [bytes([0x80, 6, 0x4e, 0x2e]), /unsupported pickle protocol 6/],
    [bytes([0xff]), /unknown pickle opcode 0xff/],
    [bytes(')K', [1, 0x61, 0x2e]), /append to a tuple, expected a list/],
    [bytes(']K', [1, 0x4b, 2, 0x73, 0x2e]), /setitem on a list, expected a dict/],
    [bytes(']', [0x29, 0x52, 0x2e]), /REDUCE on a list, expected an allowed class or function/],
    [bytes('h', [3, 0x2e]), /memo entry 3 read before it was written/],
    [bytes('.'), /stack underflow/],
    [bytes('e.'), /MARK expected but missing/],
    [bytes('Q.'), /stack underflow/],
    [bytes('K', [1, 0x51, 0x2e]), /persistent id found, but this file type has none/],
    [bytes([0x80, 5, 0x97]), /out-of-band buffers/],
    // '\u2713' has no latin1 byte, so _codecs.encode(s, 'latin1') must fail as in Python
    [bytes('c_codecs\nencode\nX', [3, 0, 0, 0, 0xe2, 0x9c, 0x93], 'X', [6, 0, 0, 0], 'latin1', [0x86, 0x52, 0x2e]), /_codecs\.encode\(\.\.\.\) rejected its arguments/],
  ];
  for (const [b, re] of cases) {
    assert.throws(() => unpickle(b, { ...plain, source: 'bad.pkl' }), (e: Error) => e instanceof CtsError && re.test(e.message) && e.message.includes('bad.pkl'), re.source);
  }
});

test('every truncation of a real pickle is reported as truncated, at every protocol', () => {
  for (const proto of [0, 2, 4, 5]) {
    const full = readFileSync(F(`values_p${proto}.pkl`));
    for (let cut = 0; cut < full.byteLength; cut++) {
      assert.throws(() => unpickle(full.subarray(0, cut), { ...plain, source: 'cut.pkl' }), (e: Error) => e instanceof CtsError && /^cut\.pkl is truncated/.test(e.message), `cut at ${cut}`);
    }
  }
});

test('corrupted pickles fail with CtsError only (seeded byte flips)', () => {
  const rng = createRng(7);
  for (const proto of [1, 2, 4]) {
    const full = readFileSync(F(`values_p${proto}.pkl`));
    for (let trial = 0; trial < 400; trial++) {
      const b = Uint8Array.from(full);
      for (let k = 0; k < 3; k++) b[Math.floor(rng.uniform() * b.length)] = Math.floor(rng.uniform() * 256);
      try {
        unpickle(b, plain);
      } catch (e) {
        assert.ok(e instanceof CtsError, `protocol ${proto} trial ${trial}: ${(e as Error).stack}`);
      }
    }
  }
});

test('allowed globals are PyGlobal values on the stack, not called unless the pickle calls them', () => {
  let calls = 0;
  const v = unpickle(bytes('ctorch\nFloatStorage\n.'), { source: 's', globals: { 'torch.FloatStorage': () => ++calls } });
  assert.ok(v instanceof PyGlobal && v.qualifiedName === 'torch.FloatStorage');
  assert.equal(calls, 0);
});
