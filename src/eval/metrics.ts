// Segmentation metrics with the official protocol (spec §6.4, mmseg `mean_iou`): one confusion
// matrix accumulated over the whole split at original resolution, ignore pixels skipped, then
// per-class IoU / accuracy with NaN for undefined classes and nan-means over the rest. It is not a
// per-image average: a class's IoU is the ratio of its dataset-wide intersection and union.
import { CtsError } from '../base/errors.js';
import { IGNORE_INDEX } from '../data/types.js';

/** Final scores of a confusion matrix; ratios in [0, 1], NaN where undefined. */
export interface SegMetrics {
  /** Per-class IoU = I/U (NaN when the class is in neither GT nor prediction). */
  iou: Float64Array;
  /** Per-class accuracy = I/#gt (NaN when the class has no GT pixel). */
  acc: Float64Array;
  /** nanmean of `iou`. */
  mIoU: number;
  /** nanmean of `acc`. */
  mAcc: number;
  /** Overall pixel accuracy ΣI / Σ#gt. */
  aAcc: number;
  /** Per-class intersection, union, GT and prediction pixel counts. */
  intersection: Float64Array;
  union: Float64Array;
  gtPixels: Float64Array;
  predPixels: Float64Array;
}

/**
 * A K x K confusion matrix, row = ground truth, column = prediction. Float64 counts stay exact up
 * to 2^53 pixels, far beyond any dataset (Cityscapes val is ~1e9 pixels).
 */
export class ConfusionMatrix {
  /** Counts, index gt * K + pred. */
  readonly counts: Float64Array;

  /** Creates an all-zero matrix for `numClasses` classes (at most 255: 255 is the ignore value). */
  constructor(readonly numClasses: number, readonly ignoreIndex = IGNORE_INDEX) {
    if (!Number.isInteger(numClasses) || numClasses < 1 || numClasses > 255) throw new CtsError(`the number of classes must be 1..255, got ${numClasses}`);
    this.counts = new Float64Array(numClasses * numClasses);
  }

  /**
   * Adds one image: `pred` and `gt` are same-length class-id maps. GT pixels equal to the ignore
   * value are skipped; any other GT or prediction value outside 0..K-1 is an error (a label map
   * with an unexpected id would otherwise be silently dropped or miscounted). `what` names the
   * image in error messages.
   */
  update(pred: ArrayLike<number>, gt: ArrayLike<number>, what = 'label'): void {
    if (pred.length !== gt.length) throw new CtsError(`${what}: prediction has ${pred.length} pixels, label ${gt.length}`);
    const K = this.numClasses, ign = this.ignoreIndex, c = this.counts;
    for (let i = 0; i < gt.length; i++) {
      const g = gt[i]!;
      if (g === ign) continue;
      const p = pred[i]!;
      if (!(g >= 0 && g < K)) throw new CtsError(`${what}: label value ${g} at pixel ${i} is not a class id 0..${K - 1} or ignore ${ign}`);
      if (!(p >= 0 && p < K)) throw new CtsError(`${what}: predicted class ${p} at pixel ${i} is outside 0..${K - 1}`);
      c[g * K + p]! += 1;
    }
  }

  /** Adds the counts of another matrix of the same size (e.g. from a parallel worker). */
  merge(other: ConfusionMatrix): void {
    if (other.numClasses !== this.numClasses) throw new CtsError(`cannot merge a ${other.numClasses}-class confusion matrix into a ${this.numClasses}-class one`);
    for (let i = 0; i < this.counts.length; i++) this.counts[i]! += other.counts[i]!;
  }

  /** Computes IoU, accuracy and their means from the accumulated counts. */
  metrics(): SegMetrics {
    return metricsFromConfusion(this.counts, this.numClasses);
  }
}

/** Mean over the non-NaN entries (NaN when all are NaN), as numpy's nanmean. */
export function nanmean(v: ArrayLike<number>): number {
  let s = 0, n = 0;
  for (let i = 0; i < v.length; i++) {
    const x = v[i]!;
    if (!Number.isNaN(x)) {
      s += x;
      n++;
    }
  }
  return n ? s / n : NaN;
}

/** Metrics of a K x K confusion matrix given as counts[gt * K + pred]. */
export function metricsFromConfusion(counts: ArrayLike<number>, K: number): SegMetrics {
  if (counts.length !== K * K) throw new CtsError(`confusion matrix has ${counts.length} entries, expected ${K}x${K}`);
  const inter = new Float64Array(K), gtPix = new Float64Array(K), predPix = new Float64Array(K);
  for (let g = 0; g < K; g++) {
    for (let p = 0; p < K; p++) {
      const n = counts[g * K + p]!;
      gtPix[g]! += n;
      predPix[p]! += n;
    }
    inter[g] = counts[g * K + g]!;
  }
  const union = new Float64Array(K), iou = new Float64Array(K), acc = new Float64Array(K);
  let sumI = 0, sumGt = 0;
  for (let k = 0; k < K; k++) {
    union[k] = predPix[k]! + gtPix[k]! - inter[k]!;
    iou[k] = union[k]! > 0 ? inter[k]! / union[k]! : NaN;
    acc[k] = gtPix[k]! > 0 ? inter[k]! / gtPix[k]! : NaN;
    sumI += inter[k]!;
    sumGt += gtPix[k]!;
  }
  return {
    iou, acc, mIoU: nanmean(iou), mAcc: nanmean(acc), aAcc: sumGt > 0 ? sumI / sumGt : NaN,
    intersection: inter, union, gtPixels: gtPix, predPixels: predPix,
  };
}
