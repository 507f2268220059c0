// Optimizers as graph updates: parameters and optimizer state are graph inputs, the updated values
// are graph outputs fed back next step, so forward, backward and update are one ORT session run.
// Formulas follow PyTorch exactly (torch.optim.SGD with nesterov, torch.optim.AdamW).
import { add, div, grad, mul, sqrt, sub, type Graph, type Value } from '../graph/index.js';
import { CtsError } from '../base/errors.js';
import type { ParamSpec } from '../nn/params.js';

/** SGD with (Nesterov) momentum, PyTorch semantics (dampening 0). timm's "sgd" is Nesterov, momentum 0.9. */
export interface SgdOptions {
  kind: 'sgd';
  momentum: number;
  nesterov: boolean;
  weightDecay: number;
}

/** AdamW (decoupled weight decay), PyTorch semantics. */
export interface AdamWOptions {
  kind: 'adamw';
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export type OptimizerOptions = SgdOptions | AdamWOptions;

/** Defaults: SGD as the official Segmenter recipe, AdamW as the official policy-net recipe. */
export const SGD_DEFAULTS: SgdOptions = { kind: 'sgd', momentum: 0.9, nesterov: true, weightDecay: 0 };
export const ADAMW_DEFAULTS: AdamWOptions = { kind: 'adamw', beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-3 };

/** Names that timm's create_optimizer keeps out of weight decay besides 1-D tensors and biases. */
export const NO_WEIGHT_DECAY = new Set(['encoder.pos_embed', 'encoder.cls_token', 'encoder.dist_token', 'decoder.cls_emb']);

/** Whether weight decay applies to a parameter (timm's rule: not 1-D, not a bias, not a no_weight_decay name). */
export function decays(name: string, shape: readonly number[]): boolean {
  return !(shape.length <= 1 || name.endsWith('.bias') || NO_WEIGHT_DECAY.has(name));
}

/** Names of the optimizer state slots per parameter, e.g. `momentum_buffer` or `exp_avg`/`exp_avg_sq`. */
export function stateSlots(o: OptimizerOptions): string[] {
  return o.kind === 'sgd' ? (o.momentum > 0 ? ['momentum_buffer'] : []) : ['exp_avg', 'exp_avg_sq'];
}

/** Graph inputs that drive one update: learning rate and (AdamW) bias corrections, scalars. */
export interface UpdateInputs {
  lr: Value;
  /** 1 - beta1^t and 1 - beta2^t (AdamW only), computed on the host from the step count. */
  bc1?: Value;
  bc2?: Value;
}

/** Declares the scalar inputs of the update (`lr`, and `bias_correction1/2` for AdamW). */
export function updateInputs(g: Graph, o: OptimizerOptions): UpdateInputs {
  const lr = g.input('lr', []);
  if (o.kind === 'sgd') return { lr };
  return { lr, bc1: g.input('bias_correction1', []), bc2: g.input('bias_correction2', []) };
}

/**
 * Appends the update of one parameter; returns the new parameter and new state values (by slot).
 * `state` holds the current value of each slot of stateSlots(o).
 */
export function applyUpdate(o: OptimizerOptions, name: string, p: Value, grad: Value, state: Record<string, Value>, u: UpdateInputs): { p: Value; state: Record<string, Value> } {
  const wd = decays(name, p.shape) ? o.weightDecay : 0;
  if (o.kind === 'sgd') {
    const d = wd ? add(grad, mul(p, wd)) : grad;
    if (o.momentum === 0) return { p: sub(p, mul(d, u.lr)), state: {} };
    // buf = momentum*buf + d (PyTorch starts from buf = d, the same as a zero buffer with dampening 0)
    const buf = add(mul(state.momentum_buffer!, o.momentum), d);
    const step = o.nesterov ? add(d, mul(buf, o.momentum)) : buf;
    return { p: sub(p, mul(step, u.lr)), state: { momentum_buffer: buf } };
  }
  const decayed = wd ? mul(p, sub(1, mul(u.lr, wd))) : p;
  const m = add(mul(state.exp_avg!, o.beta1), mul(grad, 1 - o.beta1));
  const v = add(mul(state.exp_avg_sq!, o.beta2), mul(mul(grad, grad), 1 - o.beta2));
  // PyTorch: denom = sqrt(v)/sqrt(bc2) + eps; p -= (lr/bc1) * m / denom
  const denom = add(div(sqrt(v), sqrt(u.bc2!)), o.eps);
  return { p: sub(decayed, mul(div(u.lr, u.bc1!), div(m, denom))), state: { exp_avg: m, exp_avg_sq: v } };
}

/** Host values of the scalar update inputs at optimizer step t (1-based), for a learning rate. */
export function updateFeeds(o: OptimizerOptions, lr: number, t: number): Record<string, { dtype: 'float32'; shape: number[]; data: Float32Array }> {
  const s = (x: number) => ({ dtype: 'float32' as const, shape: [] as number[], data: Float32Array.of(x) });
  if (o.kind === 'sgd') return { lr: s(lr) };
  return { lr: s(lr), bias_correction1: s(1 - o.beta1 ** t), bias_correction2: s(1 - o.beta2 ** t) };
}

/** Zero-initialised optimizer state for every parameter of a spec, keyed `${slot}:${name}`. */
export function initState(o: OptimizerOptions, spec: ParamSpec): Map<string, { dtype: 'float32'; shape: number[]; data: Float32Array }> {
  const out = new Map<string, { dtype: 'float32'; shape: number[]; data: Float32Array }>();
  for (const [name, info] of spec) {
    const n = info.shape.reduce((a, b) => a * b, 1);
    for (const slot of stateSlots(o)) out.set(`${slot}:${name}`, { dtype: 'float32', shape: [...info.shape], data: new Float32Array(n) });
  }
  return out;
}

/**
 * Appends the backward pass of `loss` and the update of every parameter of `spec` (graph inputs
 * `params`): optimizer state slots become inputs `${slot}:${name}`, the new values outputs
 * `new:${name}` and `new:${slot}:${name}`. A parameter without a gradient is an error.
 */
export function appendTrainingUpdate(g: Graph, o: OptimizerOptions, loss: Value, spec: ParamSpec, params: Map<string, Value>): void {
  const names = [...spec.keys()];
  const grads = grad(loss, names.map((n) => params.get(n)!));
  const u = updateInputs(g, o);
  names.forEach((name, i) => {
    const gv = grads[i];
    if (!gv) throw new CtsError(`parameter ${name} receives no gradient`);
    const state = Object.fromEntries(stateSlots(o).map((s) => [s, g.input(`${s}:${name}`, spec.get(name)!.shape)]));
    const r = applyUpdate(o, name, params.get(name)!, gv, state, u);
    g.output(`new:${name}`, r.p);
    for (const [s, v] of Object.entries(r.state)) g.output(`new:${s}:${name}`, v);
  });
}
