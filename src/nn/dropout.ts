// Dropout and drop-path for training graphs. Masks are drawn in-graph from a counter-based hash of
// (element index, seed, site), with the seed a graph input set per step: the same (seed, step)
// always gives the same masks, so a resumed run continues exactly, and no mask crosses the
// host/ORT boundary. (ORT's RandomUniform keeps hidden per-session state, which breaks resume.)
import { add, bitAnd, bitXor, cast, constant, div, less, mul, rangeFrom, reshape, type Value } from '../graph/index.js';

const MASK32 = 0xffffffff;
const MIX = 0x45d9f3b; // Thomas Mueller's 32-bit integer hash multiplier (< 2^31: products stay < 2^63)

function i64(like: Value, v: number): Value {
  return constant(like.graph, 'int64', [], [v]);
}

/** Uniform 32-bit hashes of (index + key) for a tensor of `n` elements. */
function hash32(seed: Value, n: number, site: number): Value {
  // key in [0, 2^31): mixes the step seed and the site so every dropout location draws its own stream
  const key = bitAnd(add(mul(seed, i64(seed, 1000003)), i64(seed, (site * 7919) % 2147483647)), i64(seed, 0x7fffffff));
  let x = rangeFrom(key, n);
  x = bitAnd(mul(x, i64(seed, MIX)), i64(seed, MASK32));
  x = bitXor(x, div(x, i64(seed, 65536)));
  x = bitAnd(mul(x, i64(seed, MIX)), i64(seed, MASK32));
  return bitXor(x, div(x, i64(seed, 65536)));
}

/** Inverted dropout of x with probability `rate`, masks drawn from (seed, site). */
export function dropout(x: Value, rate: number, seed: Value, site: number): Value {
  if (rate <= 0) return x;
  const threshold = Math.floor((1 - rate) * 2 ** 32);
  const keep = less(hash32(seed, x.size, site), i64(seed, threshold));
  return mul(x, reshape(mul(cast(keep, x.dtype), 1 / (1 - rate)), x.shape));
}

/** Per-sample drop-path (stochastic depth) of a residual branch y [B,...] from a per-sample keep factor [B]. */
export function dropPath(y: Value, keepScale: Value): Value {
  const shape = [y.shape[0]!, ...y.shape.slice(1).map(() => 1)];
  return mul(y, reshape(keepScale, shape));
}

/** Host-side per-sample drop-path factors for one step: 0 or 1/(1-rate) per sample, seeded. */
export function dropPathFactors(rate: number, batch: number, uniform: () => number): Float32Array {
  return Float32Array.from({ length: batch }, () => (rate > 0 && uniform() < rate ? 0 : rate > 0 ? 1 / (1 - rate) : 1));
}


