// Seeded random numbers (mulberry32 + Box-Muller): reproducible initialisation, policies and
// augmentation without global state. Math.random is never used for anything a user may rerun.

/** A seeded stream of uniform and normal samples. */
export interface Rng {
  /** Uniform in [0, 1). */
  uniform(): number;
  /** Standard normal. */
  normal(): number;
  /** Current internal state (to save and restore a stream exactly). */
  state(): number;
}

/** Creates a seeded generator; `state` restores a saved stream. */
export function createRng(seed: number, state?: number): Rng {
  let a = (state ?? seed) >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    uniform,
    normal: () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform()),
    state: () => a,
  };
}
