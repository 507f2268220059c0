// Softmax cross-entropy with an ignore index as one op with a hand-written gradient rule.
// Why an op and not a composite: at segmentation sizes the logits are huge ([2,150,512,512] is 315 MB
// for one ViT-S training step) and every full pass over them costs tens of milliseconds. ORT's
// LogSoftmax on the class axis 1 transposes internally and took 2.0 s of a 5.4 s step; the composite's
// gradient also made several full passes (exp, one-hot scatter-add, sums). Here the forward is
// max/sub/exp/sum along axis 1 and keeps only the small per-pixel log-sum-exp; the backward recomputes
// softmax in one pass and writes (p - onehot) * w with a scatter of small per-pixel updates, never
// materialising log-probabilities or a one-hot tensor.
//
// The upsampled variant also owns the final bilinear upsampling (Segmenter's x16 resize of the mask
// logits). It never holds a full-resolution logits tensor: it works on bands of rows of one image
// (a few MB each, classes last so every reduction runs over contiguous memory: the columns are
// interpolated once per image by a matmul, each band's rows from the one or two source rows it reads)
// and recomputes the band in the backward. The
// logits otherwise dominate a training step's memory peak (3x 315 MB at ViT-S 512x512, batch 2).
//
// Its max-shift happens before the upsampling: z minus its per-pixel class maximum, at low resolution
// (32x32 for 512x512). Bilinear weights are convex and sum to 1, so an upsampled pixel's shift (the
// interpolated maxima) is at least its own class maximum: exp never overflows, softmax and loss are
// unchanged, and every band saves the full-resolution max, subtract and add passes (~50 ms of a ViT-S
// step). exp could only underflow if neighbouring low-resolution pixels' top logits differed by more
// than ~87, far beyond trained segmentation logits; the loss would then be Inf and training stops.
import { GraphError, defineOp, fmt, type EmitCtx, type Node, type Value } from '../ir.js';
import { requireFloat } from './util.js';
import { cast, equal, exp, maximum, mul, not, sub, where, div } from './elementwise.js';
import { reduceMax, reduceSum } from './reduce.js';
import { concat, reshape, slice, transpose, unsqueeze } from './shape.js';
import { gatherElements, scatterElements, zeros } from './indexing.js';
import { interpMatrix, transposed } from './nn.js';
import { matmul } from './linalg.js';
import { add } from './elementwise.js';
import { constant } from './util.js';

/**
 * Mean softmax cross-entropy over the class axis 1 of `logits` [B,K,...] against int64 `labels`
 * [B,...], skipping pixels equal to `ignoreIndex` (PyTorch CrossEntropyLoss(ignore_index)). When
 * every pixel is ignored the loss is 0 rather than PyTorch's NaN, so a batch of pure void is a no-op.
 */
export function softmaxCrossEntropy(logits: Value, labels: Value, ignoreIndex = 255): Value {
  return logits.graph.apply('SoftmaxCrossEntropy', [logits, labels], { ignoreIndex })[0]!;
}

/**
 * softmaxCrossEntropy(resizeBilinear(z, H, W), labels) for low-resolution logits z [B,K,h,w] and
 * labels [B,H,W], computed image by image without keeping the full-resolution logits for the
 * backward (same value and gradient; about 3x the logits' size less peak memory). `bandValues`
 * sets the work unit (values per band of rows; tests make it small to get many bands).
 */
export function upsampledCrossEntropy(z: Value, labels: Value, ignoreIndex = 255, o: { bandValues?: number } = {}): Value {
  if (z.rank !== 4 || labels.rank !== 3) throw new GraphError(`upsampledCrossEntropy needs z [B,K,h,w] and labels [B,H,W]; got ${z} and ${labels}`);
  const bandValues = o.bandValues ?? BAND_VALUES;
  return z.graph.apply('SoftmaxCrossEntropy', [z, labels], { ignoreIndex, outHW: [labels.shape[1]!, labels.shape[2]!], bandValues })[0]!;
}

/** Per-pixel pieces both directions need, from labels only: [B,1,...] class index (0 where ignored) and validity. */
function labelParts(labels: Value, ignoreIndex: number, dtype: 'float32' | 'float64'): { idx: Value; valid: Value } {
  const ok = not(equal(labels, ignoreIndex));
  return { idx: unsqueeze(where(ok, labels, 0), 1), valid: unsqueeze(cast(ok, dtype), 1) };
}

/** Rows b..b+1 of axis 0. */
const row = (v: Value, b: number) => slice(v, [b], [b + 1], [0]);

defineOp('SoftmaxCrossEntropy', {
  infer: ([x, l], a) => {
    requireFloat(x!, 'softmaxCrossEntropy logits');
    if (l!.dtype !== 'int64') throw new GraphError(`labels must be int64, got ${l}`);
    const outHW = a.outHW as [number, number] | undefined;
    const full = outHW ? [...x!.shape.slice(0, 2), ...outHW] : x!.shape;
    const ls = full.filter((_, i) => i !== 1);
    if (x!.rank < 2 || ls.length !== l!.rank || ls.some((d, i) => d !== l!.shape[i])) {
      throw new GraphError(`labels ${fmt(l!.shape)} do not match logits ${fmt(full)} without the class axis (want ${fmt(ls)})`);
    }
    const stat = full.map((d, i) => (i === 1 ? 1 : d));
    // Outputs: the loss, and the per-pixel log-sum-exp [B,1,...] that the gradient reuses (of the
    // shifted logits when upsampling).
    return [{ shape: [], dtype: x!.dtype }, { shape: stat, dtype: x!.dtype }];
  },
  // d loss / d x = (softmax(x) - onehot(label)) * valid * g / max(count, 1); with upsampling, x is
  // recomputed per image and the result goes through the resize adjoint.
  grad: ({ node, inputs: [z, labels], outputs: [, lse], gOut: [g, gLse], needs }) => {
    if (gLse) throw new GraphError('SoftmaxCrossEntropy: its log-sum-exp output is internal and not differentiable');
    if (!needs(0) || !g) return [null, null];
    const dtype = z!.dtype as 'float32' | 'float64';
    const { idx, valid } = labelParts(labels!, node.attrs.ignoreIndex as number, dtype);
    const w = div(mul(valid, g), maximum(reduceSum(valid), 1));
    const outHW = node.attrs.outHW as [number, number] | undefined;
    const dLogits = (x: Value, idx: Value, w: Value, lse: Value, shifted: boolean) => {
      const atLabel = mul(sub(exp(sub(gatherElements(x, idx, 1), lse)), 1), w);
      // Upsampled bands are shifted (x <= 0), so exp(x) * (w e^-lse) is safe and one pass cheaper.
      const p = shifted ? mul(exp(x), mul(w, exp(mul(lse, -1)))) : mul(exp(sub(x, lse)), w);
      return scatterElements(p, idx, atLabel, 1);
    };
    if (!outHW) return [dLogits(z!, idx, w, lse!, false), null];
    // Same bands as the forward: recompute each band's logits, form its gradient, and pull it back
    // through the row interpolation; the column interpolation is undone once per image.
    const [B, K, h, wd] = z!.shape as [number, number, number, number];
    const [H, W] = outHW;
    const g0 = z!.graph, dt = z!.dtype;
    const mw = constant(g0, dt, [W, wd], interpMatrix(wd, W));
    const mwT = constant(g0, dt, [wd, W], transposed(interpMatrix(wd, W), W, wd));
    const mh = interpMatrix(h, H);
    const flat = (v: Value) => reshape(v, [B * H * W, 1]);
    const [idxF, wF, lseF] = [flat(idx), flat(w), flat(lse!)];
    const zt0 = transpose(z!, [0, 2, 3, 1]);
    const zt = sub(zt0, reduceMax(zt0, [3], true));
    const parts: Value[] = [];
    for (let b = 0; b < B; b++) {
      const y1 = reshape(matmul(mw, reshape(row(zt, b), [h, wd, K])), [h, W * K]);
      const bandList = bands(H, W * K, mh, h, node.attrs.bandValues as number);
      const dy1 = bandList.some((q) => q.c1 === q.c0 + 1) ? sub(slice(y1, [1], [h], [0]), slice(y1, [0], [h - 1], [0])) : y1;
      // Each band's pull-back covers source rows [c0, c1]; neighbouring bands share at most a row or
      // two, which are added, and the rest is concatenated (no image-sized accumulator per band).
      const pieces: Value[] = [];
      let tail: { v: Value; c0: number; c1: number } | undefined;
      for (const { r0, r1, c0, c1 } of bandList) {
        const m = bandMatrix(mh, h, r0, r1, c0, c1);
        // A band reading one source row scales it; one reading two is r0 + t (r1 - r0) (bilinear
        // weights sum to 1), two elementwise passes that run ~1.5x faster than MLAS's K=2 matmul.
        const rows = (v: Value, i: number, n = 1) => slice(v, [i], [i + n], [0]);
        const col = (j: number) => constant(g0, dt, [r1 - r0, 1], bandColumn(mh, h, r0, r1, j));
        const xr = c1 === c0 ? mul(col(c0), rows(y1, c0))
          : c1 === c0 + 1 ? add(rows(y1, c0), mul(col(c1), rows(dy1, c0)))
          : matmul(constant(g0, dt, [r1 - r0, c1 - c0 + 1], m), rows(y1, c0, c1 - c0 + 1));
        const x = reshape(xr, [(r1 - r0) * W, K]);
        const at = (v: Value) => slice(v, [(b * H + r0) * W], [(b * H + r1) * W], [0]);
        const d = dLogits(x, at(idxF), at(wF), at(lseF), true);
        let contrib = matmul(constant(g0, dt, [c1 - c0 + 1, r1 - r0], transposed(m, r1 - r0, c1 - c0 + 1)), reshape(d, [r1 - r0, W * K]));
        if (!tail && c0 > 0) pieces.push(zeros(g0, [c0, W * K], dt));
        if (tail) {
          const L = tail.c1 - c0 + 1;
          if (c0 > tail.c0) pieces.push(slice(tail.v, [0], [Math.min(c0, tail.c1 + 1) - tail.c0], [0]));
          // Source rows that no output row reads (downsampling) get a zero gradient.
          if (c0 > tail.c1 + 1) pieces.push(zeros(g0, [c0 - tail.c1 - 1, W * K], dt));
          if (L > 0) {
            const shared = add(slice(tail.v, [c0 - tail.c0], [tail.c1 - tail.c0 + 1], [0]), slice(contrib, [0], [L], [0]));
            contrib = L === c1 - c0 + 1 ? shared : concat([shared, slice(contrib, [L], [c1 - c0 + 1], [0])], 0);
          }
        }
        tail = { v: contrib, c0, c1 };
      }
      pieces.push(tail!.v);
      if (tail!.c1 < h - 1) pieces.push(zeros(g0, [h - 1 - tail!.c1, W * K], dt));
      const dY1 = pieces.length === 1 ? pieces[0]! : concat(pieces, 0);
      parts.push(reshape(matmul(mwT, reshape(dY1, [h, W, K])), [1, h, wd, K]));
    }
    return [transpose(parts.length === 1 ? parts[0]! : concat(parts, 0), [0, 3, 1, 2]), null];
  },
  emit: emitCrossEntropy,
});

function emitCrossEntropy(n: Node, ctx: EmitCtx, outs: string[]): void {
  const [zv, lv] = n.inputs as [Value, Value];
  const [z, labels] = [ctx.name(zv), ctx.name(lv)];
  const [loss, lse] = outs as [string, string];
  const dtype = zv.dtype;
  const outHW = n.attrs.outHW as [number, number] | undefined;
  const i64 = (xs: number[]) => ctx.constant({ dtype: 'int64', shape: [xs.length], data: BigInt64Array.from(xs, BigInt) });
  const num = (v: number) => ctx.constant(dtype === 'float64' ? { dtype, shape: [], data: Float64Array.of(v) } : { dtype: 'float32', shape: [], data: Float32Array.of(v) });
  const axis1 = i64([1]);
  const ignore = ctx.constant({ dtype: 'int64', shape: [], data: BigInt64Array.of(BigInt(n.attrs.ignoreIndex as number)) });
  const [isIgnored] = ctx.node('Equal', [labels, ignore], 1);
  const [ok] = ctx.node('Not', [isIgnored!], 1);
  const [safe] = ctx.node('Where', [ok!, labels, ctx.constant({ dtype: 'int64', shape: [], data: BigInt64Array.of(0n) })], 1);
  const [idx] = ctx.node('Unsqueeze', [safe!, axis1], 1);
  if (!outHW) {
    const { lse: l, nll } = emitBand(ctx, z, idx!, 1);
    ctx.node('Identity', [l], [lse]);
    return emitMean(ctx, nll, ok!, dtype, loss, axis1, num);
  }
  // Bands of rows of one image at a time, classes last: X = Mh[rows] (Mw Z_b) as [R*W, K].
  const [B, K, h, wd] = zv.shape as [number, number, number, number];
  const [H, W] = outHW;
  const mat = (shape: number[], data: Float64Array) => ctx.constant(dtype === 'float64' ? { dtype, shape, data } : { dtype: 'float32', shape, data: Float32Array.from(data) });
  const mw = mat([W, wd], interpMatrix(wd, W));
  const mh = interpMatrix(h, H);
  const [zt0] = ctx.node('Transpose', [z], 1, { perm: { ints: [0, 2, 3, 1] } });
  const [zMax] = ctx.node('ReduceMax', [zt0!, i64([3])], 1, { keepdims: { i: 1 } });
  const [zt] = ctx.node('Sub', [zt0!, zMax!], 1);
  const [idxF] = ctx.node('Reshape', [idx!, i64([B * H * W, 1])], 1);
  const stats: string[] = [];
  for (let b = 0; b < B; b++) {
    const [zb] = ctx.node('Slice', [zt!, i64([b]), i64([b + 1]), i64([0])], 1);
    const [zb3] = ctx.node('Reshape', [zb!, i64([h, wd, K])], 1);
    const [y1] = ctx.node('MatMul', [mw, zb3!], 1);
    const [y1r] = ctx.node('Reshape', [y1!, i64([h, W * K])], 1);
    const rows = (v: string, i: number, n = 1) => ctx.node('Slice', [v, i64([i]), i64([i + n]), i64([0])], 1)[0]!;
    const bandList = bands(H, W * K, mh, h, n.attrs.bandValues as number);
    const dy1 = bandList.some((q) => q.c1 === q.c0 + 1) ? ctx.node('Sub', [rows(y1r!, 1, h - 1), rows(y1r!, 0, h - 1)], 1)[0]! : y1r!;
    for (const { r0, r1, c0, c1 } of bandList) {
      const R = r1 - r0;
      // The same three forms as the gradient's recomputation (see the note there).
      const col = (j: number) => mat([R, 1], bandColumn(mh, h, r0, r1, j));
      const [xr] = c1 === c0 ? ctx.node('Mul', [col(c0), rows(y1r!, c0)], 1)
        : c1 === c0 + 1 ? ctx.node('Add', [rows(y1r!, c0), ctx.node('Mul', [col(c1), rows(dy1, c0)], 1)[0]!], 1)
        : ctx.node('MatMul', [mat([R, c1 - c0 + 1], bandMatrix(mh, h, r0, r1, c0, c1)), rows(y1r!, c0, c1 - c0 + 1)], 1);
      const [x] = ctx.node('Reshape', [xr!, i64([R * W, K])], 1);
      const [ib] = ctx.node('Slice', [idxF!, i64([(b * H + r0) * W]), i64([(b * H + r1) * W]), i64([0])], 1);
      // lse and nll leave the band as one [R*W, 2] tensor: whichever consumer ORT schedules first
      // (the backward wants lse, the loss nll) then runs the whole band, so x dies band by band.
      const { lse: l, nll } = emitBand(ctx, x!, ib!, -1, false);
      stats.push(ctx.node('Concat', [l, nll], 1, { axis: { i: 1 } })[0]!);
    }
  }
  const [all] = ctx.node('Concat', stats, 1, { axis: { i: 0 } });
  const [lseF] = ctx.node('Slice', [all!, i64([0]), i64([1]), i64([1])], 1);
  ctx.node('Reshape', [lseF!, i64([B, 1, H, W])], [lse]);
  const [nllF] = ctx.node('Slice', [all!, i64([1]), i64([2]), i64([1])], 1);
  const [nll] = ctx.node('Reshape', [nllF!, i64([B, 1, H, W])], 1);
  emitMean(ctx, nll!, ok!, dtype, loss, axis1, num);
}

/**
 * log-sum-exp over `axis` and lse minus the logit at each label, both with that axis kept as 1.
 * `shift` max-shifts x first; without it x must already be shifted (see the header).
 */
function emitBand(ctx: EmitCtx, x: string, idx: string, axis: number, shift = true): { lse: string; nll: string } {
  const ax = ctx.constant({ dtype: 'int64', shape: [1], data: BigInt64Array.of(BigInt(axis)) });
  const keep = { keepdims: { i: 1 } };
  let lse: string;
  if (shift) {
    const [m] = ctx.node('ReduceMax', [x, ax], 1, keep);
    const [xc] = ctx.node('Sub', [x, m!], 1);
    const [e] = ctx.node('Exp', [xc!], 1);
    const [s] = ctx.node('ReduceSum', [e!, ax], 1, keep);
    const [ls] = ctx.node('Log', [s!], 1);
    [lse] = ctx.node('Add', [ls!, m!], 1) as [string];
  } else {
    const [e] = ctx.node('Exp', [x], 1);
    const [s] = ctx.node('ReduceSum', [e!, ax], 1, keep);
    [lse] = ctx.node('Log', [s!], 1) as [string];
  }
  const [picked] = ctx.node('GatherElements', [x, idx], 1, { axis: { i: axis } });
  const [nll] = ctx.node('Sub', [lse, picked!], 1);
  return { lse, nll: nll! };
}

/** loss = sum(nll * valid) / max(count, 1) over all pixels. */
function emitMean(ctx: EmitCtx, nll: string, ok: string, dtype: string, loss: string, axis1: string, num: (v: number) => string): void {
  const [okU] = ctx.node('Unsqueeze', [ok, axis1], 1);
  const [vf] = ctx.node('Cast', [okU!], 1, { to: { i: dtype === 'float64' ? 11 : 1 } });
  const [masked] = ctx.node('Mul', [nll, vf!], 1);
  const [total] = ctx.node('ReduceSum', [masked!], 1, { keepdims: { i: 0 } });
  const [count] = ctx.node('ReduceSum', [vf!], 1, { keepdims: { i: 0 } });
  const [den] = ctx.node('Max', [count!, num(1)], 1);
  ctx.node('Div', [total!, den!], [loss]);
}

/**
 * Row bands [r0, r1) of an H-row output whose rows hold `perRow` values (at most `bandValues` a
 * band, unless one row is more), with the source rows [c0, c1] that the row interpolation `mh`
 * [H, h] reads for them. A band is a run of rows that read the same source rows (16 rows between
 * two source rows for Segmenter's x16), so most bands read one or two rows and interpolate
 * elementwise; runs shorter than MIN_RUN rows (small up- or downsampling factors) are merged and
 * interpolated by a matmul. Bands cover every source row in order, neighbours sharing at most the
 * rows they both read.
 */
function bands(H: number, perRow: number, mh: Float64Array, h: number, bandValues: number): { r0: number; r1: number; c0: number; c1: number }[] {
  const cap = Math.max(1, Math.floor(bandValues / perRow));
  const support = (r: number) => {
    let c0 = h, c1 = -1;
    for (let c = 0; c < h; c++) if (mh[r * h + c] !== 0) { c0 = Math.min(c0, c); c1 = Math.max(c1, c); }
    return { c0, c1 };
  };
  const out: { r0: number; r1: number; c0: number; c1: number }[] = [];
  let band: { r0: number; r1: number; c0: number; c1: number; same: boolean } | undefined;
  for (let r = 0; r < H; r++) {
    const { c0, c1 } = support(r);
    const len = band ? band.r1 - band.r0 : 0;
    if (band && len < cap && ((band.same && c0 === band.c0 && c1 === band.c1) || len < MIN_RUN)) {
      band.same &&= c0 === band.c0 && c1 === band.c1;
      band.r1 = r + 1;
      band.c0 = Math.min(band.c0, c0);
      band.c1 = Math.max(band.c1, c1);
    } else {
      if (band) out.push({ r0: band.r0, r1: band.r1, c0: band.c0, c1: band.c1 });
      band = { r0: r, r1: r + 1, c0, c1, same: true };
    }
  }
  if (band) out.push({ r0: band.r0, r1: band.r1, c0: band.c0, c1: band.c1 });
  return out;
}

/** Shorter runs of rows reading the same source rows are merged into one band (fewer, larger ops). */
const MIN_RUN = 4;

/** Column j of rows r0..r1-1 of the [H, h] matrix mh: the weights those rows give source row j. */
function bandColumn(mh: Float64Array, h: number, r0: number, r1: number, j: number): Float64Array {
  return Float64Array.from({ length: r1 - r0 }, (_, i) => mh[(r0 + i) * h + j]!);
}

/** Rows r0..r1-1, columns c0..c1 of the [H, h] matrix mh. */
function bandMatrix(mh: Float64Array, h: number, r0: number, r1: number, c0: number, c1: number): Float64Array {
  const out = new Float64Array((r1 - r0) * (c1 - c0 + 1));
  for (let r = r0; r < r1; r++) for (let c = c0; c <= c1; c++) out[(r - r0) * (c1 - c0 + 1) + c - c0] = mh[r * h + c]!;
  return out;
}

/**
 * Values per band at most (5 MB of float32): small enough to stay in cache between the band's
 * passes, large enough for the 16 rows x 512 x 150 classes of ViT-S at 512x512 in one band.
 */
const BAND_VALUES = 1_310_720;
