// 2-D convolution (PyTorch Conv2d semantics) with its reverse-mode rules. The gradients are built
// from Conv nodes themselves (plus Concat/Slice/Reshape/Transpose/Gather/MatMul), so the backward
// pass runs on ORT's float32 Conv kernels, and the float64 lowering below covers forward and
// backward alike: ORT CPU has no float64 Conv, and gradient checks run in float64. ConvTranspose is
// not used: at stride 2 it measured no faster than the zero-interleaved Conv, it is erratic for
// depthwise at stride 1 (engine notes), and it would need a float64 lowering of its own.
import { GraphError, defineOp, fmt, type EmitCtx, type Node, type Value } from '../ir.js';
import { i64, requireFloat, sameDtype, typedAttrs } from './util.js';
import { concat, reshape, slice, transpose } from './shape.js';
import { reduceSum } from './reduce.js';
import { matmul, mT } from './linalg.js';
import { gather, zeros } from './indexing.js';

/** Options of a 2-D convolution (PyTorch Conv2d semantics). */
export interface ConvOptions {
  strides?: [number, number];
  /** [ph, pw] symmetric (PyTorch), or ONNX order [top, left, bottom, right]. */
  pads?: [number, number] | [number, number, number, number];
  dilations?: [number, number];
  group?: number;
}

/** 2-D convolution, NCHW input, weight [Cout, Cin/group, kh, kw], optional bias [Cout]. */
export function conv2d(x: Value, w: Value, b?: Value, o: ConvOptions = {}): Value {
  const p = o.pads ?? [0, 0];
  return rawConv(x, w, b, {
    strides: [...(o.strides ?? [1, 1])],
    pads: p.length === 2 ? [p[0], p[1], p[0], p[1]] : [...p],
    dilations: [...(o.dilations ?? [1, 1])],
    group: o.group ?? 1,
  });
}

interface ConvAttrs {
  strides: number[];
  /** ONNX order [top, left, bottom, right]. */
  pads: number[];
  dilations: number[];
  group: number;
}

function rawConv(x: Value, w: Value, b: Value | undefined, a: ConvAttrs): Value {
  return x.graph.apply1('Conv', b ? [x, w, b] : [x, w], { ...a });
}

function attrsOf(n: Node): ConvAttrs {
  const a = n.attrs;
  return { strides: a.strides as number[], pads: a.pads as number[], dilations: a.dilations as number[], group: a.group as number };
}

/** Output length of one spatial axis. */
function outLen(len: number, k: number, s: number, padSum: number, d: number): number {
  return Math.floor((len + padSum - d * (k - 1) - 1) / s) + 1;
}

const isPosInts = (v: unknown, n: number, min: number) =>
  Array.isArray(v) && v.length === n && v.every((e) => Number.isInteger(e) && e >= min);

/**
 * Splits per-side amounts (negative = crop) of the two spatial axes into a Slice applied now and
 * the non-negative pads that the next Conv takes, so no Pad node is ever materialised.
 */
function cropAndPads(x: Value, begin: [number, number], end: [number, number]): { x: Value; pads: number[] } {
  const [h, w] = [x.shape[2]!, x.shape[3]!];
  if (begin.some((v) => v < 0) || end.some((v) => v < 0)) {
    x = slice(x, [Math.max(0, -begin[0]), Math.max(0, -begin[1])], [h - Math.max(0, -end[0]), w - Math.max(0, -end[1])], [2, 3]);
  }
  return { x, pads: [Math.max(0, begin[0]), Math.max(0, begin[1]), Math.max(0, end[0]), Math.max(0, end[1])] };
}

/** dL/dx: a stride-1 Conv of the zero-interleaved dY with the group-transposed, flipped kernel. */
function convGradInput(dy: Value, w: Value, xShape: readonly number[], a: ConvAttrs): Value {
  const [n, c, h, wd] = xShape as [number, number, number, number];
  const [co, cg, kh, kw] = w.shape as [number, number, number, number];
  const g = a.group, cog = co / g;
  const [sh, sw] = a.strides as [number, number], [dh, dw] = a.dilations as [number, number];
  const [pt, pl] = a.pads as [number, number];
  let wt = reshape(w, [g, cog, cg, kh * kw]);
  if (cog > 1 && cg > 1) wt = transpose(wt, [0, 2, 1, 3]);
  // reversing the flattened kh*kw axis flips both spatial axes at once
  if (kh * kw > 1) wt = gather(wt, i64(w.graph, [...Array(kh * kw).keys()].reverse()), 3);
  wt = reshape(wt, [c, cog, kh, kw]);
  let d = dy;
  const [oh, ow] = [dy.shape[2]!, dy.shape[3]!];
  // Zero interleaving by concatenating zeros along a new inner axis: ORT's Pad on that 6-D view
  // measured ~5x slower than the Concat. The trailing s-1 zeros are cropped or padded below.
  if (sw > 1) d = reshape(concat([reshape(d, [n, co, oh, ow, 1]), zeros(d, [n, co, oh, ow, sw - 1], d.dtype)], 4), [n, co, oh, ow * sw]);
  if (sh > 1) d = reshape(concat([reshape(d, [n, co, oh, 1, ow * sw]), zeros(d, [n, co, oh, sh - 1, ow * sw], d.dtype)], 3), [n, co, oh * sh, ow * sw]);
  const ah = dh * (kh - 1) - pt, aw = dw * (kw - 1) - pl;
  const bh = h + dh * (kh - 1) - d.shape[2]! - ah, bw = wd + dw * (kw - 1) - d.shape[3]! - aw;
  const cp = cropAndPads(d, [ah, aw], [bh, bw]);
  return rawConv(cp.x, wt, undefined, { strides: [1, 1], pads: cp.pads, dilations: [dh, dw], group: g });
}

/** dL/dw: a Conv whose "kernel" is dY (dilated by the stride) sliding over x (strided by the dilation). */
function convGradWeight(dy: Value, x: Value, wShape: readonly number[], a: ConvAttrs): Value {
  const [n, c, h, wd] = x.shape as [number, number, number, number];
  const [co, cg, kh, kw] = wShape as [number, number, number, number];
  const [oh, ow] = [dy.shape[2]!, dy.shape[3]!];
  const g = a.group, cog = co / g;
  const [sh, sw] = a.strides as [number, number], [dh, dw] = a.dilations as [number, number];
  const [pt, pl, pb, pr] = a.pads as [number, number, number, number];
  if (kh === 1 && kw === 1 && g === 1 && pt + pl + pb + pr === 0) {
    // pointwise: one batched GEMM per image, far faster on ORT than a conv with an OHxOW kernel
    const xs = sh > 1 || sw > 1 ? slice(x, [0, 0], [oh * sh, ow * sw], [2, 3], [sh, sw]) : x;
    const r = matmul(reshape(dy, [n, co, oh * ow]), mT(reshape(xs, [n, c, oh * ow])));
    return reshape(n > 1 ? reduceSum(r, [0]) : r, [co, c, 1, 1]);
  }
  // Only the input up to `need` reaches a kernel tap; cropping the end pad there makes the trick
  // conv's output exactly kh x kw instead of computing taps that would be sliced away.
  const needH = (kh - 1) * dh + sh * (oh - 1) + 1, needW = (kw - 1) * dw + sw * (ow - 1) + 1;
  const endH = needH - h - pt, endW = needW - wd - pl;
  const trick = { strides: [dh, dw], dilations: [sh, sw] };
  if (cg === 1) {
    // Depthwise: N*C groups of one channel on the free reshape of x to [1, N*C, H, W], then a sum
    // over N. The engine-notes form (x transposed to [C, N, H, W], C groups) measured 1.1-2.5x slower.
    const cp = cropAndPads(reshape(x, [1, n * c, h, wd]), [pt, pl], [endH, endW]);
    const r = rawConv(cp.x, reshape(dy, [n * co, 1, oh, ow]), undefined, { ...trick, pads: cp.pads, group: n * c });
    const s = n > 1 ? reduceSum(reshape(r, [n, co * kh * kw]), [0]) : r;
    return reshape(s, [co, 1, kh, kw]);
  }
  // grouped or dense: batch = input channel within the group, channels = (group, image)
  let xt = reshape(x, [n, g, cg, h, wd]);
  xt = n > 1 ? transpose(xt, [2, 1, 0, 3, 4]) : xt;
  let dyt = reshape(dy, [n, g, cog, oh, ow]);
  dyt = n > 1 ? transpose(dyt, [1, 2, 0, 3, 4]) : dyt;
  const cp = cropAndPads(reshape(xt, [cg, g * n, h, wd]), [pt, pl], [endH, endW]);
  const r = rawConv(cp.x, reshape(dyt, [co, n, oh, ow]), undefined, { ...trick, pads: cp.pads, group: g });
  return transpose(r, [1, 0, 2, 3]);
}

defineOp('Conv', {
  infer: ([x, w, b], a) => {
    requireFloat(x!, 'Conv input');
    sameDtype(x!, w!);
    if (x!.rank !== 4 || w!.rank !== 4) throw new GraphError('Conv needs NCHW input and OIHW weight');
    const group = a.group as number;
    if (!Number.isInteger(group) || group < 1) throw new GraphError(`bad group ${group}`);
    if (!isPosInts(a.strides, 2, 1) || !isPosInts(a.dilations, 2, 1) || !isPosInts(a.pads, 4, 0)) {
      throw new GraphError(`bad strides/pads/dilations ${JSON.stringify([a.strides, a.pads, a.dilations])}`);
    }
    const [n, c, h, wd] = x!.shape as [number, number, number, number];
    const [co, ci, kh, kw] = w!.shape as [number, number, number, number];
    if (c !== ci * group || co % group) throw new GraphError(`channels: input ${c}, weight ${fmt(w!.shape)}, group ${group}`);
    if (b) {
      sameDtype(x!, b);
      if (b.rank !== 1 || b.shape[0] !== co) throw new GraphError(`bias ${b} must be [${co}]`);
    }
    const [sh, sw] = a.strides as number[], [pt, pl, pb, pr] = a.pads as number[], [dh, dw] = a.dilations as number[];
    const oh = outLen(h, kh, sh!, pt! + pb!, dh!), ow = outLen(wd, kw, sw!, pl! + pr!, dw!);
    if (oh <= 0 || ow <= 0) throw new GraphError(`kernel larger than padded input ${fmt(x!.shape)}`);
    return [{ shape: [n, co, oh, ow], dtype: x!.dtype }];
  },
  grad: ({ node, inputs: [x, w, b], gOut: [g], needs }) => {
    const a = attrsOf(node);
    return [
      needs(0) ? convGradInput(g!, w!, x!.shape, a) : null,
      needs(1) ? convGradWeight(g!, x!, w!.shape, a) : null,
      b && needs(2) ? reduceSum(g!, [0, 2, 3]) : null,
    ];
  },
  emit: (n, ctx, outs) => {
    if (n.inputs[0]!.dtype === 'float64') return emitConvF64(n, ctx, outs);
    ctx.node('Conv', n.inputs.map((v) => ctx.name(v)), outs, typedAttrs(n.attrs, { strides: 'ints', pads: 'ints', dilations: 'ints', group: 'int' }));
  },
});

/**
 * Float64 Conv from standard ops: Pad, strided Slices and grouped MatMuls. It loops over the
 * smaller of the kernel taps (one slice of every output position per tap, products summed) and the
 * output positions (one kernel window per position, results concatenated), so both ordinary convs
 * and the weight-gradient convs (kernel = dY, output = kh x kw) take min(kh*kw, OH*OW) slices. A
 * single Gather im2col measured several times slower: ORT's Gather copies element by element.
 */
function emitConvF64(n: Node, ctx: EmitCtx, outs: string[]): void {
  const [x, w, b] = n.inputs as [Value, Value, Value | undefined];
  const [N, C] = x.shape as [number, number];
  const [Co, Cg, kh, kw] = w.shape as [number, number, number, number];
  const [OH, OW] = n.outputs[0]!.shape.slice(2) as [number, number];
  const { strides: [sh, sw], pads: [pt, pl, pb, pr], dilations: [dh, dw], group: g } = attrsOf(n) as {
    strides: [number, number]; pads: [number, number, number, number]; dilations: [number, number]; group: number;
  };
  const cog = Co / g, K = kh * kw, P = OH * OW;
  const ints = (xs: readonly number[]) => ctx.constant({ dtype: 'int64', shape: [xs.length], data: BigInt64Array.from(xs, BigInt) });
  const op1 = (op: string, ins: string[]) => ctx.node(op, ins, 1)[0]!;
  const sl = (t: string, starts: number[], lens: number[], steps: number[]) =>
    op1('Slice', [t, ints(starts), ints(starts.map((v, i) => v + (lens[i]! - 1) * steps[i]! + 1)), ints([2, 3]), ints(steps)]);
  let xs = ctx.name(x);
  if (pt + pl + pb + pr > 0) {
    xs = ctx.node('Pad', [xs, ints([0, 0, pt, pl, 0, 0, pb, pr]), ctx.constant({ dtype: 'float64', shape: [], data: Float64Array.of(0) })], 1, { mode: { s: 'constant' } })[0]!;
  }
  // depthwise (one in and one out channel per group): broadcast Mul, since ORT's float64 MatMul on
  // thousands of 1-row batches is slow
  const dwise = Cg === 1 && cog === 1;
  let y: string;
  if (dwise) {
    const wk = op1('Reshape', [ctx.name(w), ints([C, K])]);
    const terms: string[] = [];
    if (K <= P) {
      for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) {
        const tap = op1('Reshape', [sl(xs, [i * dh, j * dw], [OH, OW], [sh, sw]), ints([N, C, P])]);
        terms.push(op1('Mul', [tap, op1('Slice', [wk, ints([i * kw + j]), ints([i * kw + j + 1]), ints([1]), ints([1])])]));
      }
      y = terms.reduce((acc, t) => op1('Add', [acc, t]));
    } else {
      for (let oy = 0; oy < OH; oy++) for (let ox = 0; ox < OW; ox++) {
        const win = op1('Reshape', [sl(xs, [oy * sh, ox * sw], [kh, kw], [dh, dw]), ints([N, C, K])]);
        terms.push(ctx.node('ReduceSum', [op1('Mul', [win, wk]), ints([2])], 1, { keepdims: { i: 1 } })[0]!);
      }
      y = terms.length === 1 ? terms[0]! : ctx.node('Concat', terms, 1, { axis: { i: 2 } })[0]!;
    }
  } else if (K <= P) {
    // y = sum over taps of W[:, :, i, j] @ x[tap-shifted, strided]
    const wt = op1('Reshape', [ctx.name(w), ints([g, cog, Cg, K])]);
    const terms: string[] = [];
    for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) {
      const tap = K === 1 && pt + pl + pb + pr === 0 && sh * sw === 1 ? xs : sl(xs, [i * dh, j * dw], [OH, OW], [sh, sw]);
      const wk = K === 1 ? wt : op1('Slice', [wt, ints([i * kw + j]), ints([i * kw + j + 1]), ints([3]), ints([1])]);
      terms.push(op1('MatMul', [op1('Reshape', [wk, ints([g, cog, Cg])]), op1('Reshape', [tap, ints([N, g, Cg, P])])]));
    }
    y = terms.reduce((acc, t) => op1('Add', [acc, t]));
  } else {
    // one kernel window per output position: [g, cog, Cg*K] @ [N, g, Cg*K, 1]
    const wm = op1('Reshape', [ctx.name(w), ints([g, cog, Cg * K])]);
    const cols: string[] = [];
    for (let oy = 0; oy < OH; oy++) for (let ox = 0; ox < OW; ox++) {
      const win = sl(xs, [oy * sh, ox * sw], [kh, kw], [dh, dw]);
      cols.push(op1('MatMul', [wm, op1('Reshape', [win, ints([N, g, Cg * K, 1])])]));
    }
    y = cols.length === 1 ? cols[0]! : ctx.node('Concat', cols, 1, { axis: { i: 3 } })[0]!;
  }
  if (!b) return void ctx.node('Reshape', [y, ints([N, Co, OH, OW])], outs);
  const y4 = op1('Reshape', [y, ints([N, Co, OH, OW])]);
  ctx.node('Add', [y4, op1('Reshape', [ctx.name(b), ints([Co, 1, 1])])], outs);
}
