// BatchNorm2d (PyTorch semantics) as a composite of primitive ops, so autodiff differentiates it
// without a hand-written rule, and it lowers to float64 for gradient checks. ORT's
// BatchNormalization op is not used: its training mode exists only in ORT training builds.
import {
  GraphError, add, mul, reciprocal, reduceMean, reshape, sqrt, stopGradient, sub, type Value,
} from '../graph/index.js';

/** The four tensors of a BatchNorm2d layer, each [C]. */
export interface BatchNormParams {
  weight: Value;
  bias: Value;
  runningMean: Value;
  runningVar: Value;
}

/** Numerical options (PyTorch defaults). */
export interface BatchNormOptions {
  eps?: number;
  /** Weight of the new batch statistic in the running average. */
  momentum?: number;
}

/** Normalised output, plus the updated running statistics in train mode (constant for autodiff). */
export interface BatchNormResult {
  y: Value;
  runningMean?: Value;
  runningVar?: Value;
}

/**
 * BatchNorm2d on NCHW `x`. 'eval' normalises with the running statistics; 'train' with the batch
 * statistics (biased variance) and also returns the running statistics PyTorch would store:
 * (1-m)*old + m*batch, where the variance term is the unbiased batch variance.
 */
export function batchNorm(x: Value, p: BatchNormParams, mode: 'eval' | 'train', o: BatchNormOptions = {}): BatchNormResult {
  const eps = o.eps ?? 1e-5, m = o.momentum ?? 0.1;
  if (x.rank !== 4) throw new GraphError(`batchNorm needs NCHW input, got ${x}`);
  const c = x.shape[1]!;
  for (const [k, v] of Object.entries(p) as [string, Value][]) {
    if (v.rank !== 1 || v.shape[0] !== c || v.dtype !== x.dtype) throw new GraphError(`batchNorm ${k} ${v} must be ${x.dtype}[${c}] for input ${x}`);
  }
  const chan = (v: Value) => reshape(v, [1, c, 1, 1]);
  if (mode === 'eval') {
    // per-channel scale and shift first, so the big tensor sees one Mul and one Add
    const scale = mul(p.weight, reciprocal(sqrt(add(p.runningVar, eps))));
    const shift = sub(p.bias, mul(p.runningMean, scale));
    return { y: add(mul(x, chan(scale)), chan(shift)) };
  }
  const count = x.shape[0]! * x.shape[2]! * x.shape[3]!;
  if (count < 2) throw new GraphError(`batchNorm in train mode needs more than one value per channel, got ${x}`);
  const mean = reduceMean(x, [0, 2, 3], true);
  const xc = sub(x, mean);
  const variance = reduceMean(mul(xc, xc), [0, 2, 3], true);
  const scale = mul(reciprocal(sqrt(add(variance, eps))), chan(p.weight));
  const y = add(mul(xc, scale), chan(p.bias));
  const flat = (v: Value) => reshape(stopGradient(v), [c]);
  const runningMean = stopGradient(add(mul(p.runningMean, 1 - m), mul(flat(mean), m)));
  const runningVar = stopGradient(add(mul(p.runningVar, 1 - m), mul(flat(variance), (m * count) / (count - 1))));
  return { y, runningMean, runningVar };
}
