// Neural-network ops: Softmax, LogSoftmax, LayerNormalization, Conv, bilinear resize, and the
// composites built from primitives (GELU, 2x2 average pooling, softmax cross-entropy with ignore).
import { GraphError, defineOp, fmt, normAxis, type Value } from '../ir.js';
import { emitAs, requireFloat, sameDtype, typedAttrs } from './util.js';
import { add, cast, div, equal, erf, maximum, mul, neg, not, where } from './elementwise.js';
import { reduceMean, reduceSum } from './reduce.js';
import { reshape, squeeze, unsqueeze } from './shape.js';
import { gatherElements } from './indexing.js';

/** Softmax along an axis. */
export function softmax(x: Value, axis = -1): Value {
  return x.graph.apply1('Softmax', [x], { axis: normAxis(axis, x.rank) });
}

/** Log-softmax along an axis. */
export function logSoftmax(x: Value, axis = -1): Value {
  return x.graph.apply1('LogSoftmax', [x], { axis: normAxis(axis, x.rank) });
}

/**
 * LayerNorm over the last axis with affine weight and bias (PyTorch nn.LayerNorm semantics,
 * biased variance). The node also outputs mean and 1/std, which its gradient rule reuses.
 */
export function layerNorm(x: Value, weight: Value, bias: Value, eps = 1e-5): Value {
  return x.graph.apply('LayerNormalization', [x, weight, bias], { eps })[0]!;
}

/** Exact (erf) GELU, written in the pattern ORT's GeluFusion recognises. */
export function gelu(x: Value): Value {
  return mul(mul(x, add(erf(div(x, Math.SQRT2)), 1)), 0.5);
}

/** Options of a 2-D convolution (PyTorch Conv2d semantics, symmetric padding). */
export interface ConvOptions {
  strides?: [number, number];
  pads?: [number, number];
  dilations?: [number, number];
  group?: number;
}

/** 2-D convolution, NCHW input, weight [Cout, Cin/group, kh, kw], optional bias [Cout]. */
export function conv2d(x: Value, w: Value, b?: Value, o: ConvOptions = {}): Value {
  const p = o.pads ?? [0, 0];
  return x.graph.apply1('Conv', b ? [x, w, b] : [x, w], {
    strides: [...(o.strides ?? [1, 1])],
    pads: [p[0], p[1], p[0], p[1]],
    dilations: [...(o.dilations ?? [1, 1])],
    group: o.group ?? 1,
  });
}

/** 2x2 average pooling with stride 2 (as reshape + mean, so its gradient is automatic). */
export function avgPool2x2(x: Value): Value {
  const [b, c, h, w] = x.shape as [number, number, number, number];
  if (x.rank !== 4 || h % 2 || w % 2) throw new GraphError(`avgPool2x2 needs NCHW with even H, W; got ${x}`);
  return reduceMean(reshape(x, [b, c, h / 2, 2, w / 2, 2]), [3, 5]);
}

/**
 * Bilinear resize of the last two axes to (outH, outW), half-pixel centres, border clamp, no
 * antialias: PyTorch's F.interpolate(mode='bilinear', align_corners=False) for up- and downsampling.
 */
export function resizeBilinear(x: Value, outH: number, outW: number): Value {
  return x.graph.apply1('ResizeBilinear', [x], { outH, outW });
}

/**
 * Mean softmax cross-entropy over the class axis 1 of `logits` [B,K,...] against int64 `labels`
 * [B,...], skipping pixels equal to `ignoreIndex` (PyTorch CrossEntropyLoss(ignore_index)). When
 * every pixel is ignored the loss is 0 rather than PyTorch's NaN, so a batch of pure void is a no-op.
 */
export function softmaxCrossEntropy(logits: Value, labels: Value, ignoreIndex = 255): Value {
  if (labels.dtype !== 'int64') throw new GraphError(`labels must be int64, got ${labels}`);
  const ls = logits.shape.filter((_, i) => i !== 1);
  if (ls.length !== labels.rank || ls.some((d, i) => d !== labels.shape[i])) {
    throw new GraphError(`labels ${fmt(labels.shape)} do not match logits ${fmt(logits.shape)} without the class axis`);
  }
  const valid = not(equal(labels, ignoreIndex));
  const safe = where(valid, labels, 0);
  const logp = logSoftmax(logits, 1);
  const picked = squeeze(gatherElements(logp, unsqueeze(safe, 1), 1), 1);
  const validF = cast(valid, logits.dtype);
  const total = reduceSum(mul(neg(picked), validF));
  return div(total, maximum(reduceSum(validF), 1));
}

defineOp('Softmax', {
  infer: ([x]) => (requireFloat(x!, 'Softmax input'), [{ shape: [...x!.shape], dtype: x!.dtype }]),
  grad: ({ node, outputs: [y], gOut: [g] }) => {
    const axis = node.attrs.axis as number;
    const gy = mul(g!, y!);
    return [sub_(gy, mul(y!, reduceSum(gy, [axis], true)))];
  },
  emit: emitAs('Softmax', { axis: 'int' }),
});

defineOp('LogSoftmax', {
  infer: ([x]) => (requireFloat(x!, 'LogSoftmax input'), [{ shape: [...x!.shape], dtype: x!.dtype }]),
  grad: ({ node, outputs: [y], gOut: [g] }) => {
    const axis = node.attrs.axis as number;
    return [sub_(g!, mul(exp_(y!), reduceSum(g!, [axis], true)))];
  },
  emit: emitAs('LogSoftmax', { axis: 'int' }),
});

// local aliases keep the grad rules readable without widening the import list
import { sub as sub_, exp as exp_ } from './elementwise.js';

defineOp('LayerNormalization', {
  infer: ([x, w, b]) => {
    requireFloat(x!, 'LayerNorm input');
    sameDtype(x!, w!);
    sameDtype(x!, b!);
    const d = x!.shape[x!.rank - 1]!;
    if (w!.rank !== 1 || w!.shape[0] !== d || b!.rank !== 1 || b!.shape[0] !== d) {
      throw new GraphError(`weight ${w} and bias ${b} must be [${d}]`);
    }
    const stat = [...x!.shape.slice(0, -1), 1];
    return [
      { shape: [...x!.shape], dtype: x!.dtype },
      { shape: stat, dtype: x!.dtype },
      { shape: stat, dtype: x!.dtype },
    ];
  },
  emit: (n, ctx, outs) => {
    const [x, w, b] = n.inputs.map((v) => ctx.name(v)) as [string, string, string];
    ctx.node('LayerNormalization', [x, w, b], outs, { axis: { i: -1 }, epsilon: { f: n.attrs.eps as number } });
  },
});

defineOp('Conv', {
  infer: ([x, w, b], a) => {
    requireFloat(x!, 'Conv input');
    sameDtype(x!, w!);
    if (x!.rank !== 4 || w!.rank !== 4) throw new GraphError('Conv needs NCHW input and OIHW weight');
    const group = a.group as number;
    const [n, c, h, wd] = x!.shape as [number, number, number, number];
    const [co, ci, kh, kw] = w!.shape as [number, number, number, number];
    if (c !== ci * group || co % group) throw new GraphError(`channels: input ${c}, weight ${fmt(w!.shape)}, group ${group}`);
    if (b && (b.rank !== 1 || b.shape[0] !== co)) throw new GraphError(`bias ${b} must be [${co}]`);
    const [sh, sw] = a.strides as number[], [ph, pw] = a.pads as number[], [dh, dw] = a.dilations as number[];
    const oh = Math.floor((h + 2 * ph! - dh! * (kh - 1) - 1) / sh!) + 1;
    const ow = Math.floor((wd + 2 * pw! - dw! * (kw - 1) - 1) / sw!) + 1;
    if (oh <= 0 || ow <= 0) throw new GraphError(`kernel larger than padded input ${fmt(x!.shape)}`);
    return [{ shape: [n, co, oh, ow], dtype: x!.dtype }];
  },
  emit: (n, ctx, outs) => {
    ctx.node('Conv', n.inputs.map((v) => ctx.name(v)), outs, typedAttrs(n.attrs, { strides: 'ints', pads: 'ints', dilations: 'ints', group: 'int' }));
  },
});

/** 1-D interpolation matrix M [out, in] such that y = M x is PyTorch's align_corners=False linear resize. */
export function interpMatrix(nIn: number, nOut: number): Float64Array {
  const m = new Float64Array(nOut * nIn);
  const scale = nIn / nOut;
  for (let o = 0; o < nOut; o++) {
    const src = Math.max((o + 0.5) * scale - 0.5, 0);
    const i0 = Math.min(Math.floor(src), nIn - 1);
    const i1 = Math.min(i0 + 1, nIn - 1);
    const l1 = src - i0;
    m[o * nIn + i0]! += 1 - l1;
    m[o * nIn + i1]! += l1;
  }
  return m;
}

defineOp('ResizeBilinear', {
  infer: ([x], a) => {
    requireFloat(x!, 'resize input');
    if (x!.rank < 2) throw new GraphError('resize needs rank >= 2');
    const outH = a.outH as number, outW = a.outW as number;
    if (!(outH > 0 && outW > 0)) throw new GraphError(`bad output size ${outH}x${outW}`);
    return [{ shape: [...x!.shape.slice(0, -2), outH, outW], dtype: x!.dtype }];
  },
  emit: (n, ctx, outs) => {
    const x = n.inputs[0]!;
    const sizes = n.outputs[0]!.shape;
    ctx.node('Resize', [ctx.name(x), '', '', ctx.constant({ dtype: 'int64', shape: [sizes.length], data: BigInt64Array.from(sizes, BigInt) })], outs, {
      mode: { s: 'linear' },
      coordinate_transformation_mode: { s: 'half_pixel' },
    });
  },
});


