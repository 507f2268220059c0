// Keeps gradient testing complete: every registered op is either listed with the test file that
// checks its gradient, declared non-differentiable, or declared forward-only with a reason (and a
// forward test). Also proves that the finite-difference harness can fail (a deliberately wrong rule
// is rejected) and that autodiff refuses rule-less ops.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { Graph, GraphError, defineOp, emitAs, grad, mul, opDef, reduceSum, registeredOps, type Value } from '../../src/graph/index.js';
import { gradCheck, randTensor } from '../helpers/gradcheck.js';

/** Op -> test file (test/graph/<file>.test.ts) holding its float64 finite-difference check. */
const GRAD_TESTED: Record<string, string> = {
  Add: 'elementwise', Sub: 'elementwise', Mul: 'elementwise', Div: 'elementwise', Max: 'elementwise', Neg: 'elementwise',
  Exp: 'elementwise', Log: 'elementwise', Sqrt: 'elementwise', Reciprocal: 'elementwise', Tanh: 'elementwise',
  Relu: 'elementwise', Clip: 'elementwise', Erf: 'elementwise', Where: 'elementwise', Cast: 'elementwise',
  Reshape: 'shape', Transpose: 'shape', Concat: 'shape', Slice: 'shape', Expand: 'shape', Pad: 'shape', Identity: 'shape',
  ReduceSum: 'reduce', ReduceMean: 'reduce', ReduceMax: 'reduce',
  MatMul: 'linalg', Gemm: 'linalg',
  Gather: 'indexing', GatherElements: 'indexing', GatherND: 'indexing', ScatterND: 'indexing', ScatterElements: 'indexing',
  Softmax: 'nn', LogSoftmax: 'nn', LayerNormalization: 'nn', ResizeBilinear: 'nn', SoftmaxCrossEntropy: 'nn', Gelu: 'nn', AttentionCore: 'nn',
  Conv: 'conv', // rule and tests owned by the conv work
};

/**
 * Inference-only ops, with the reason each cannot have a gradient rule and the test file holding its
 * forward check instead. Autodiff refuses them (no rule, not stopsGradient): a training graph that
 * reached one would fail loudly rather than train on a zero gradient.
 */
const FORWARD_ONLY: Record<string, { reason: string; test: string }> = {
  DynamicQuantizeMatMul: { reason: 'int8 inference: activations are rounded to uint8 at run time, a step function with no useful derivative', test: 'quantized' },
  QuantizeSymmetric: { reason: 'int8 inference: rounds to int8 codes, a step function with no useful derivative', test: 'quantized' },
};

/** Ops through which no gradient flows: bool outputs, index outputs, constants. */
const NON_DIFFERENTIABLE = ['Equal', 'Less', 'Greater', 'Not', 'ArgMax', 'TopK', 'Zeros', 'StopGradient', 'BitwiseAnd', 'BitwiseXor', 'RangeFrom'];

// Ops named Test* are registered by test files for themselves (like the ones below).
const productOps = () => registeredOps().filter((op) => !op.startsWith('Test'));

test('every registered op has a gradient rule and a listed gradient test, or is non-differentiable or forward-only', () => {
  for (const op of productOps()) {
    const def = opDef(op);
    if (op in FORWARD_ONLY) {
      assert.ok(!def.grad && !def.stopsGradient, `${op} is listed as forward-only but has a gradient rule or stops gradients`);
      continue;
    }
    if (NON_DIFFERENTIABLE.includes(op)) {
      assert.ok(!def.grad, `${op} is listed as non-differentiable but has a gradient rule: list it in GRAD_TESTED`);
      continue;
    }
    assert.ok(op in GRAD_TESTED, `op ${op} is neither in GRAD_TESTED nor in NON_DIFFERENTIABLE: add a gradient test`);
    assert.ok(def.grad, `op ${op} has no gradient rule`);
    assert.ok(!def.stopsGradient, `op ${op} has a gradient rule but is flagged stopsGradient`);
  }
  assert.ok(opDef('StopGradient').stopsGradient && opDef('TopK').stopsGradient && opDef('ArgMax').stopsGradient);
});

test('the coverage lists name only registered ops and existing test files', () => {
  const ops = productOps();
  for (const op of [...Object.keys(GRAD_TESTED), ...NON_DIFFERENTIABLE, ...Object.keys(FORWARD_ONLY)]) assert.ok(ops.includes(op), `listed op ${op} is not registered`);
  for (const file of new Set([...Object.values(GRAD_TESTED), ...Object.values(FORWARD_ONLY).map((f) => f.test)])) {
    assert.ok(existsSync(new URL(`./${file}.test.js`, import.meta.url)), `test/graph/${file}.test.ts is missing`);
  }
});

// y = x^2 with a rule of (2 + err) x g: err = 0 is right, anything else must be caught.
defineOp('TestBadGrad', {
  infer: ([x]) => [{ shape: [...x!.shape], dtype: x!.dtype }],
  grad: ({ node, inputs: [x], gOut: [g] }) => [mul(g!, mul(x!, 2 + (node.attrs.err as number)))],
  emit: (n, ctx, outs) => void ctx.node('Mul', [ctx.name(n.inputs[0]!), ctx.name(n.inputs[0]!)], outs),
});

test('gradCheck rejects a wrong gradient rule, grossly or subtly wrong', async () => {
  const x = { value: randTensor([2, 3], 1) };
  const sq = (err: number) => (v: Value) => v.graph.apply1('TestBadGrad', [v], { err });
  await gradCheck(sq(0), [x]);
  await assert.rejects(gradCheck(sq(1), [x]), /input 0: analytic .* vs numeric/);
  await assert.rejects(gradCheck(sq(1e-4), [x]), /input 0: analytic .* vs numeric/);
  // also along random directions (the path used for large inputs)
  await assert.rejects(gradCheck(sq(1e-4), [{ value: randTensor([4, 5], 2) }], { maxElements: 8 }), /analytic .* vs numeric/);
});

defineOp('TestNoGrad', { infer: ([x]) => [{ shape: [...x!.shape], dtype: x!.dtype }], emit: emitAs('Identity') });

test('autodiff refuses an op without a rule instead of dropping its gradient', () => {
  const g = new Graph();
  const x = g.input('x', [2], 'float64');
  assert.throws(() => grad(reduceSum(g.apply1('TestNoGrad', [x])), [x]), (e: unknown) => e instanceof GraphError && /op TestNoGrad has no gradient rule/.test(e.message));
});
