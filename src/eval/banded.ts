// Maps the views' merged logits (sliding.ts, at view resolution) back to the original image and
// combines them (spec §6.2 steps 4-5, §6.3) in bands of output rows. Doing it in one go needs
// K x H x W floats per original image (about 15 GB for a 12-megapixel photo and 150 classes); a
// band needs K x rows x W. Each output pixel depends only on its own taps, so computing a band with
// the full resize's taps and the per-pixel softmax/argmax gives the unbanded result bit for bit.
import { CtsError } from '../base/errors.js';
import { resizeBilinearTorchArgmaxRows, resizeBilinearTorchRows } from '../data/resize.js';
import { addSoftmax, argmaxChannels, flipRows, type FloatImage } from './sliding.js';

/** One view's merged logits, as slidingLogits returns them. */
export interface MergedView {
  /** Pre-softmax logits [K, h, w] at the view's (sliding) resolution, mirrored when `flip`. */
  logits: FloatImage;
  /** The view was mirrored: flip back after resizing. */
  flip?: boolean;
  /** Per-pixel shared fraction [h*w], same resolution and orientation as `logits`. */
  sharedFraction?: Float32Array;
}

/** Options of mergeViews and ViewMerger. */
export interface MergeOptions {
  /** Also return the class probabilities [K, H, W] (the only output that costs K x H x W floats). */
  probabilities?: boolean;
  /** Output rows per band; default defaultBandRows(K, W). */
  bandRows?: number;
}

/** Result of mergeViews: everything at the output size H x W. */
export interface MergedPrediction {
  /** Class id per pixel [H*W]. */
  classes: Uint8Array;
  /**
   * When requested: [K, H, W] class probabilities, the softmax of the resized logits for one view and
   * the mean over views of their softmaxes (the sum divided by the view count) for several.
   */
  probabilities?: Float32Array;
  /** Mean over all views of the resized shared fractions [H*W], when any view carries one. */
  sharedFraction?: Float32Array;
}

/** Approximate size of one band of K x rows x W float32 values. */
export const BAND_BYTES = 32 * 2 ** 20;

/** Output rows per band so that K x rows x W float32 values stay around BAND_BYTES (at least one row). */
export function defaultBandRows(numClasses: number, width: number): number {
  return Math.max(1, Math.floor(BAND_BYTES / (4 * numClasses * width)));
}

/**
 * Rows [y0, y1) of a [C, h, w] map resized to H x W (torch bilinear, as F.interpolate in spec §6.2)
 * and mirrored back when `flip`, as a [C, y1 - y0, W] array. A map already at H x W is copied, not
 * resampled, as the unbanded path never resized it.
 */
export function resizedRows(img: FloatImage, flip: boolean, H: number, W: number, y0: number, y1: number): Float32Array {
  const { channels: C, height: h, width: w, data } = img;
  const rows = y1 - y0;
  let out: Float32Array;
  if (h === H && w === W) {
    out = new Float32Array(C * rows * W);
    for (let c = 0; c < C; c++) out.set(data.subarray(c * h * w + y0 * w, c * h * w + y1 * w), c * rows * W);
  } else {
    out = resizeBilinearTorchRows(data, C, h, w, H, W, y0, y1);
  }
  return flip ? flipRows(out, C, rows, W) : out;
}

/**
 * The class map of rows [y0, y1) of one view resized to H x W (argmax over channels, first on ties),
 * equal to argmaxChannels(resizedRows(...)) but without the band's channels x rows x W values.
 */
export function resizedArgmaxRows(img: FloatImage, flip: boolean, H: number, W: number, y0: number, y1: number): Uint8Array {
  const { channels: C, height: h, width: w, data } = img;
  const classes = h === H && w === W
    ? argmaxChannels(resizedRows(img, false, H, W, y0, y1), C, (y1 - y0) * W)
    : resizeBilinearTorchArgmaxRows(data, C, h, w, H, W, y0, y1);
  return flip ? flipRows(classes, 1, y1 - y0, W) : classes;
}

/**
 * Combines views one at a time, so a caller never needs all their logits at once. Views are held at
 * their own resolution until they would outweigh one [K, H, W] accumulator (an original smaller than
 * its views, as in multi-scale evaluation of small images) or probabilities are asked for; from then
 * on each view's softmax is added to that accumulator (stored as bands, so addSoftmax runs on
 * contiguous [K, n] blocks exactly as in the unbanded computation) and its logits are dropped.
 */
export class ViewMerger {
  private readonly held: MergedView[] = [];
  private readonly fractions: FloatImage[] = [];
  private readonly flips: boolean[] = [];
  private accBands: Float32Array[] | undefined;
  private count = 0;
  private K = 0;
  private rows = 0;

  /** An empty merger for an H x W output. */
  constructor(
    readonly height: number,
    readonly width: number,
    private readonly o: MergeOptions = {},
  ) {
    if (!(Number.isInteger(height) && Number.isInteger(width) && height > 0 && width > 0)) throw new CtsError(`cannot merge views into a ${width}x${height} output`);
    if (o.bandRows !== undefined && !(Number.isInteger(o.bandRows) && o.bandRows > 0)) throw new CtsError(`band height must be a positive integer, got ${o.bandRows}`);
  }

  /** Adds one view (in view order: the order of the summation, hence of rounding). */
  add(view: MergedView): void {
    const { channels: K, height: h, width: w, data } = view.logits;
    if (this.count === 0) {
      if (!(Number.isInteger(K) && K > 0)) throw new CtsError(`a view has ${K} classes`);
      if (K > 255) throw new CtsError(`${K} classes do not fit an 8-bit class map (at most 255)`);
      this.K = K;
      this.rows = Math.min(this.height, this.o.bandRows ?? defaultBandRows(K, this.width));
    } else if (K !== this.K) {
      throw new CtsError(`views disagree on the number of classes (${this.K} and ${K})`);
    }
    if (data.length !== K * h * w) throw new CtsError(`view logits have ${data.length} values for ${K}x${h}x${w}`);
    if (view.sharedFraction) {
      if (view.sharedFraction.length !== h * w) throw new CtsError(`shared fraction has ${view.sharedFraction.length} values for a ${h}x${w} view`);
      this.fractions.push({ channels: 1, height: h, width: w, data: view.sharedFraction });
      this.flips.push(!!view.flip);
    }
    this.count++;
    this.held.push({ logits: view.logits, flip: !!view.flip });
    const heldFloats = this.held.reduce((a, v) => a + v.logits.data.length, 0);
    if (this.accBands || (this.count >= 2 && (this.o.probabilities || heldFloats > this.K * this.height * this.width))) this.fold();
  }

  /** Output rows [y0, y1) of every band. */
  private bands(): [number, number][] {
    const out: [number, number][] = [];
    for (let y0 = 0; y0 < this.height; y0 += this.rows) out.push([y0, Math.min(this.height, y0 + this.rows)]);
    return out;
  }

  /** Adds the softmax of every held view to the accumulator and drops the views. */
  private fold(): void {
    const { K, width: W } = this;
    const bands = this.bands();
    this.accBands ??= bands.map(([y0, y1]) => new Float32Array(K * (y1 - y0) * W));
    for (const v of this.held) {
      bands.forEach(([y0, y1], b) => addSoftmax(resizedRows(v.logits, !!v.flip, this.height, W, y0, y1), K, (y1 - y0) * W, this.accBands![b]!));
    }
    this.held.length = 0;
  }

  /**
   * The class map (single view: argmax of the logits, as softmax is monotonic; several: argmax of the
   * summed softmaxes, first class on ties), and probabilities and shared fraction as documented on
   * MergedPrediction. The merger is spent afterwards.
   */
  finish(): MergedPrediction {
    if (this.count === 0) throw new CtsError('no view to merge');
    const { K, height: H, width: W, count } = this;
    const classes = new Uint8Array(H * W);
    const probs = this.o.probabilities ? new Float32Array(K * H * W) : undefined;
    const scatter = (band: Float32Array, y0: number, n: number, div: number) => {
      for (let k = 0; k < K; k++) {
        const dst = k * H * W + y0 * W, src = k * n;
        if (div === 1) probs!.set(band.subarray(src, src + n), dst);
        else for (let i = 0; i < n; i++) probs![dst + i] = band[src + i]! / div;
      }
    };
    this.bands().forEach(([y0, y1], b) => {
      const n = (y1 - y0) * W;
      let scores: Float32Array;
      if (this.accBands) {
        scores = this.accBands[b]!;
        this.accBands[b] = new Float32Array(0); // reclaimable while the probabilities' pages fill in
      } else if (count === 1 && !probs) {
        // one view, no probabilities: the argmax is taken as the band is resized
        classes.set(resizedArgmaxRows(this.held[0]!.logits, !!this.held[0]!.flip, H, W, y0, y1), y0 * W);
        return;
      } else if (count === 1) {
        scores = resizedRows(this.held[0]!.logits, !!this.held[0]!.flip, H, W, y0, y1);
      } else {
        scores = new Float32Array(K * n);
        for (const v of this.held) addSoftmax(resizedRows(v.logits, !!v.flip, H, W, y0, y1), K, n, scores);
      }
      classes.set(argmaxChannels(scores, K, n), y0 * W);
      if (!probs) return;
      if (count > 1) scatter(scores, y0, n, count);
      else {
        const sm = new Float32Array(K * n);
        addSoftmax(scores, K, n, sm);
        scatter(sm, y0, n, 1);
      }
    });
    this.held.length = 0;
    this.accBands = undefined;
    return { classes, ...(probs ? { probabilities: probs } : {}), ...(this.fractions.length ? { sharedFraction: this.mergeFractions() } : {}) };
  }

  /** Sum over views of fraction / view count, in view order (the unbanded arithmetic). */
  private mergeFractions(): Float32Array {
    const { height: H, width: W, count } = this;
    const out = new Float32Array(H * W);
    for (const [y0, y1] of this.bands()) {
      const o = y0 * W, n = (y1 - y0) * W;
      this.fractions.forEach((f, i) => {
        const r = resizedRows(f, this.flips[i]!, H, W, y0, y1);
        for (let p = 0; p < n; p++) out[o + p]! += r[p]! / count;
      });
    }
    return out;
  }
}

/**
 * Resizes each view's merged logits to height x width, flips mirrored views back and combines them
 * (see ViewMerger.finish), band by band; equal bit for bit to resizing every view whole.
 */
export function mergeViews(views: readonly MergedView[], height: number, width: number, o: MergeOptions = {}): MergedPrediction {
  const m = new ViewMerger(height, width, o);
  for (const v of views) m.add(v);
  return m.finish();
}
