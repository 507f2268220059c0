// The CTS policy network: timm 0.4.12's EfficientNet-Lite0 (features_only, last stride-32 map) and a
// 1x1 conv head to 2 classes per 32x32 superpatch. Parameter names are the official state-dict
// keys, so PyTorch checkpoints load by name.
import { GraphError, add, clip, conv2d, type Value } from '../graph/index.js';
import type { HostTensor } from '../base/tensor.js';
import { batchNorm } from '../nn/batchnorm.js';
import { addParam, type ParamFn, type ParamSpec } from '../nn/params.js';

/** Options shared by the spec, init, builder and MAC count. */
export interface PolicyNetOptions {
  /** Channel multiplier of the stages (timm `round_channels`); stem (32) and head are fixed. Default 1. */
  width?: number;
}

/** Options of buildPolicyNet. */
export interface PolicyNetBuildOptions extends PolicyNetOptions {
  /** 'train' uses batch statistics and returns updated running stats, as `model.train()` in PyTorch. */
  bnMode: 'eval' | 'train';
}

/** Graph outputs of the policy network. */
export interface PolicyNetOutputs {
  /** [B, 2, H/32, W/32]; channel 1 = "share this superpatch". */
  logits: Value;
  /** Updated `running_mean`/`running_var` buffers by state-dict name (train mode only, else empty). */
  runningStats: Map<string, Value>;
}

// timm's efficientnet_lite0 arch_def: ds_r1_k3_s1_e1_c16, ir_r2_k3_s2_e6_c24, ir_r2_k5_s2_e6_c40,
// ir_r3_k3_s2_e6_c80, ir_r3_k5_s1_e6_c112, ir_r4_k5_s2_e6_c192, ir_r1_k3_s1_e6_c320
const STAGES: readonly { type: 'ds' | 'ir'; repeats: number; k: number; s: number; e: number; c: number }[] = [
  { type: 'ds', repeats: 1, k: 3, s: 1, e: 1, c: 16 },
  { type: 'ir', repeats: 2, k: 3, s: 2, e: 6, c: 24 },
  { type: 'ir', repeats: 2, k: 5, s: 2, e: 6, c: 40 },
  { type: 'ir', repeats: 3, k: 3, s: 2, e: 6, c: 80 },
  { type: 'ir', repeats: 3, k: 5, s: 1, e: 6, c: 112 },
  { type: 'ir', repeats: 4, k: 5, s: 2, e: 6, c: 192 },
  { type: 'ir', repeats: 1, k: 3, s: 1, e: 6, c: 320 },
];
const STEM = 32;
const CLASSES = 2;

/** timm's make_divisible: round to a multiple of 8, never dropping more than 10%. */
function makeDivisible(v: number, divisor = 8): number {
  let n = Math.max(divisor, Math.floor((v + divisor / 2) / divisor) * divisor);
  if (n < 0.9 * v) n += divisor;
  return n;
}

interface BlockDef {
  name: string;
  type: 'ds' | 'ir';
  cin: number;
  mid: number;
  cout: number;
  k: number;
  stride: number;
  residual: boolean;
}

/** The block list as timm's EfficientNetBuilder lays it out (names `blocks.{stage}.{index}`). */
function blockTable(width = 1): BlockDef[] {
  const out: BlockDef[] = [];
  let cin = STEM;
  STAGES.forEach((st, i) => {
    const cout = width === 1 ? st.c : makeDivisible(st.c * width);
    for (let j = 0; j < st.repeats; j++) {
      const stride = j === 0 ? st.s : 1;
      const mid = st.type === 'ds' ? cin : makeDivisible(cin * st.e);
      out.push({ name: `blocks.${i}.${j}`, type: st.type, cin, mid, cout, k: st.k, stride, residual: stride === 1 && cin === cout });
      cin = cout;
    }
  });
  return out;
}

/** One conv of the network: its state-dict name and geometry (for spec, init and MAC count). */
interface ConvDef {
  name: string;
  cin: number;
  cout: number;
  k: number;
  stride: number;
  group: number;
  /** BatchNorm that follows (state-dict prefix), none for the head. */
  bn?: string;
}

/** Every conv in forward order, with the BN that follows it. */
function convTable(width = 1): ConvDef[] {
  const b = 'backbone.';
  const convs: ConvDef[] = [{ name: `${b}conv_stem`, cin: 3, cout: STEM, k: 3, stride: 2, group: 1, bn: `${b}bn1` }];
  for (const blk of blockTable(width)) {
    const n = `${b}${blk.name}`;
    if (blk.type === 'ds') {
      convs.push({ name: `${n}.conv_dw`, cin: blk.cin, cout: blk.cin, k: blk.k, stride: blk.stride, group: blk.cin, bn: `${n}.bn1` });
      convs.push({ name: `${n}.conv_pw`, cin: blk.cin, cout: blk.cout, k: 1, stride: 1, group: 1, bn: `${n}.bn2` });
    } else {
      convs.push({ name: `${n}.conv_pw`, cin: blk.cin, cout: blk.mid, k: 1, stride: 1, group: 1, bn: `${n}.bn1` });
      convs.push({ name: `${n}.conv_dw`, cin: blk.mid, cout: blk.mid, k: blk.k, stride: blk.stride, group: blk.mid, bn: `${n}.bn2` });
      convs.push({ name: `${n}.conv_pwl`, cin: blk.mid, cout: blk.cout, k: 1, stride: 1, group: 1, bn: `${n}.bn3` });
    }
  }
  const last = convs[convs.length - 1]!.cout;
  convs.push({ name: 'head', cin: last, cout: CLASSES, k: 1, stride: 1, group: 1 });
  return convs;
}

/** State-dict spec (parameters and buffers, in state-dict order) of the policy network. */
export function policyNetSpec(o: PolicyNetOptions = {}): ParamSpec {
  const spec: ParamSpec = new Map();
  for (const c of convTable(o.width)) {
    addParam(spec, `${c.name}.weight`, [c.cout, c.cin / c.group, c.k, c.k]);
    if (!c.bn) addParam(spec, `${c.name}.bias`, [c.cout]);
    else {
      for (const t of ['weight', 'bias', 'running_mean', 'running_var']) addParam(spec, `${c.bn}.${t}`, [c.cout]);
      // a scalar buffer; addParam rejects the empty shape, so it is set directly
      spec.set(`${c.bn}.num_batches_tracked`, { shape: [], dtype: 'int64' });
    }
  }
  return spec;
}

/** Number of trainable scalars (weights and biases, not BN buffers). */
export function policyNetParamCount(o: PolicyNetOptions = {}): number {
  let n = 0;
  for (const [name, info] of policyNetSpec(o)) {
    if (/\.(weight|bias)$/.test(name)) n += info.shape.reduce((a, b) => a * b, 1);
  }
  return n;
}

/** Deterministic uniform [0,1) and normal samplers on one mulberry32 stream, so an init is reproducible. */
function sampler(seed: number): { uniform: () => number; normal: () => number } {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
  return { uniform, normal };
}

/**
 * Fresh weights as PyTorch would make them: backbone convs N(0, sqrt(2/fan_out)) with
 * fan_out = k*k*cout/groups (timm `_init_weight_goog`), BN weight 1, bias 0, running mean 0, var 1;
 * the head keeps nn.Conv2d's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
 */
export function initPolicyNet(seed: number, o: PolicyNetOptions = {}): Map<string, HostTensor> {
  const rnd = sampler(seed);
  const out = new Map<string, HostTensor>();
  const f32 = (shape: number[], f: () => number): HostTensor => {
    const n = shape.reduce((a, b) => a * b, 1);
    return { dtype: 'float32', shape, data: Float32Array.from({ length: n }, f) };
  };
  for (const c of convTable(o.width)) {
    const wShape = [c.cout, c.cin / c.group, c.k, c.k];
    if (c.bn) {
      const std = Math.sqrt(2 / ((c.k * c.k * c.cout) / c.group));
      out.set(`${c.name}.weight`, f32(wShape, () => rnd.normal() * std));
      out.set(`${c.bn}.weight`, f32([c.cout], () => 1));
      out.set(`${c.bn}.bias`, f32([c.cout], () => 0));
      out.set(`${c.bn}.running_mean`, f32([c.cout], () => 0));
      out.set(`${c.bn}.running_var`, f32([c.cout], () => 1));
      out.set(`${c.bn}.num_batches_tracked`, { dtype: 'int64', shape: [], data: BigInt64Array.of(0n) });
    } else {
      const bound = 1 / Math.sqrt((c.cin / c.group) * c.k * c.k);
      const uni = () => (2 * rnd.uniform() - 1) * bound;
      out.set(`${c.name}.weight`, f32(wShape, uni));
      out.set(`${c.name}.bias`, f32([c.cout], uni));
    }
  }
  return out;
}

/** Multiply-accumulates of all convs for an h x w input (batch 1), from the block table. */
export function policyNetMacs(h: number, w: number, o: PolicyNetOptions = {}): number {
  checkSize(h, w);
  let macs = 0;
  let [ch, cw] = [h, w];
  for (const c of convTable(o.width)) {
    // PyTorch padding k//2 makes every output ceil(in / stride)
    [ch, cw] = [Math.ceil(ch / c.stride), Math.ceil(cw / c.stride)];
    macs += ch * cw * c.cout * (c.cin / c.group) * c.k * c.k;
  }
  return macs;
}

function checkSize(h: number, w: number): void {
  if (!(h > 0 && w > 0 && h % 32 === 0 && w % 32 === 0)) {
    throw new GraphError(`policy net input must be a positive multiple of 32 in height and width (one logit pair per 32x32 superpatch), got ${h}x${w}`);
  }
}

/**
 * Builds the policy network on a normalised [B,3,H,W] input (H, W multiples of 32). `p` supplies
 * every parameter and BN buffer by state-dict name; `num_batches_tracked` is not used in the graph
 * (the caller increments it when it stores the train-mode running stats).
 */
export function buildPolicyNet(x: Value, p: ParamFn, opts: PolicyNetBuildOptions): PolicyNetOutputs {
  if (x.rank !== 4 || x.shape[1] !== 3) throw new GraphError(`policy net input must be [B,3,H,W], got ${x}`);
  checkSize(x.shape[2]!, x.shape[3]!);
  const runningStats = new Map<string, Value>();
  const convs = new Map(convTable(opts.width).map((c) => [c.name, c]));
  const convBn = (v: Value, name: string, act: boolean): Value => {
    const c = convs.get(name)!;
    const pad = Math.floor(c.k / 2);
    let y = conv2d(v, p(`${name}.weight`), undefined, { strides: [c.stride, c.stride], pads: [pad, pad], group: c.group });
    const bn = c.bn!;
    const r = batchNorm(y, {
      weight: p(`${bn}.weight`), bias: p(`${bn}.bias`), runningMean: p(`${bn}.running_mean`), runningVar: p(`${bn}.running_var`),
    }, opts.bnMode, { eps: 1e-5, momentum: 0.1 });
    if (r.runningMean && r.runningVar) {
      runningStats.set(`${bn}.running_mean`, r.runningMean);
      runningStats.set(`${bn}.running_var`, r.runningVar);
    }
    y = r.y;
    return act ? clip(y, 0, 6) : y;
  };
  let h = convBn(x, 'backbone.conv_stem', true);
  for (const blk of blockTable(opts.width)) {
    const n = `backbone.${blk.name}`;
    const shortcut = h;
    if (blk.type === 'ds') {
      h = convBn(convBn(h, `${n}.conv_dw`, true), `${n}.conv_pw`, false);
    } else {
      h = convBn(convBn(convBn(h, `${n}.conv_pw`, true), `${n}.conv_dw`, true), `${n}.conv_pwl`, false);
    }
    if (blk.residual) h = add(h, shortcut);
  }
  const logits = conv2d(h, p('head.weight'), p('head.bias'));
  return { logits, runningStats };
}
