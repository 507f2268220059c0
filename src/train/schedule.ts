// Learning-rate schedules, evaluated on the host once per iteration (segm/optim/scheduler.py).

/** A schedule: learning rate at update t (0-based: the LR used for the (t+1)-th step). */
export type Schedule = (t: number) => number;

/** Options of the polynomial schedule. */
export interface PolyOptions {
  lr: number;
  /** Total updates T (len(loader) * epochs). */
  total: number;
  power?: number;
  minLr?: number;
  warmup?: number;
}

/**
 * Per-iteration polynomial decay exactly as the official PolynomialLR (segm/optim/scheduler.py):
 * t = updates so far; t = 0 keeps the base LR (also with warm-up: a quirk of the original); during
 * warm-up (t < W) the coefficient is (t/W)(1 - W/T)^p, afterwards (1 - t/T)^p; the LR is
 * (lr0 - min)*coef + min, and frozen once t passes T.
 */
export function polySchedule(o: PolyOptions): Schedule {
  const p = o.power ?? 0.9, minLr = o.minLr ?? 1e-5, warm = o.warmup ?? 0, total = o.total;
  const at = (t: number) => {
    const coef = t < warm ? (t / warm) * (1 - warm / total) ** p : (1 - t / total) ** p;
    return (o.lr - minLr) * coef + minLr;
  };
  return (t) => (t === 0 ? o.lr : at(Math.min(t, total)));
}

/** Constant learning rate (the policy network's recipe). */
export function constantSchedule(lr: number): Schedule {
  return () => lr;
}
