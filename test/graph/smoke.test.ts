import { test } from 'node:test';
import { gemm, erf } from '../../src/graph/index.js';
import { gradCheck, randTensor } from '../helpers/gradcheck.js';

test('gradcheck harness: Gemm + Erf (float64 lowering)', async () => {
  await gradCheck((x, w) => erf(gemm(x, w, undefined, { transB: true })), [{ value: randTensor([2, 3], 1) }, { value: randTensor([4, 3], 2) }]);
});
