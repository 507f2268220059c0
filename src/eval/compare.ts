// int8 against float32 on the same windows: a WindowRunner that runs a reference and a candidate
// model on every window it is given and keeps the differences of their logits, so a dataset
// evaluation through it measures the candidate's mIoU and, in the same pass, how far its raw
// outputs are from the reference's (`eval --compare-precision`).
import type { HostTensor } from '../base/tensor.js';
import type { Prediction, WindowRunner } from '../cts/predictor.js';

/** How a candidate's logits differ from a reference's over the windows seen. */
export interface LogitComparison {
  windows: number;
  /** Pixels compared (windows x height x width). */
  pixels: number;
  /** Fraction of pixels whose argmax over classes is the same. */
  argmaxAgreement: number;
  /** Largest |candidate - reference| over every logit. */
  maxAbsError: number;
  /** Mean |candidate - reference| over every logit. */
  meanAbsError: number;
  /** Root mean square of the reference logits: the scale the errors are to be read against. */
  referenceRms: number;
}

/** Accumulates LogitComparison statistics over logits [b,K,h,w] pairs. */
export class LogitStats {
  private windows = 0;
  private pixels = 0;
  private agree = 0;
  private maxAbs = 0;
  private sumAbs = 0;
  private sumSq = 0;
  private count = 0;

  /** Adds one batch of logits [b,K,h,w] of the reference and the candidate. */
  add(ref: HostTensor, cand: HostTensor): void {
    const [b, k, h, w] = ref.shape as [number, number, number, number];
    const r = ref.data as Float32Array, c = cand.data as Float32Array;
    const plane = h * w;
    for (let n = 0; n < b; n++) {
      const base = n * k * plane;
      for (let p = 0; p < plane; p++) {
        let ar = 0, ac = 0, br = -Infinity, bc = -Infinity;
        for (let j = 0; j < k; j++) {
          const i = base + j * plane + p;
          const x = r[i]!, y = c[i]!;
          if (x > br) (br = x), (ar = j);
          if (y > bc) (bc = y), (ac = j);
          const d = Math.abs(x - y);
          if (d > this.maxAbs) this.maxAbs = d;
          this.sumAbs += d;
          this.sumSq += x * x;
        }
        if (ar === ac) this.agree++;
      }
    }
    this.windows += b;
    this.pixels += b * plane;
    this.count += b * k * plane;
  }

  /** The statistics so far. */
  result(): LogitComparison {
    return {
      windows: this.windows, pixels: this.pixels, argmaxAgreement: this.pixels ? this.agree / this.pixels : NaN,
      maxAbsError: this.maxAbs, meanAbsError: this.count ? this.sumAbs / this.count : NaN, referenceRms: this.count ? Math.sqrt(this.sumSq / this.count) : NaN,
    };
  }
}

/**
 * Runs `reference` and `candidate` on each window and returns the candidate's prediction; the logit
 * differences go into `stats`. Both must have the same crop, batch and sharing decision (a float32
 * policy network in both, so the same tokens are shared and the comparison is of the arithmetic only).
 */
export class ComparingRunner implements WindowRunner {
  readonly stats = new LogitStats();

  constructor(private readonly reference: WindowRunner, private readonly candidate: WindowRunner) {}

  get crop(): [number, number] { return this.candidate.crop; }
  get batch(): number { return this.candidate.batch; }
  get numClasses(): number { return this.candidate.numClasses; }
  get policy(): WindowRunner['policy'] { return this.candidate.policy; }
  get budget(): WindowRunner['budget'] { return this.candidate.budget; }
  get needsScores(): boolean { return this.candidate.needsScores; }
  get provider(): WindowRunner['provider'] { return this.candidate.provider; }

  /** Runs both models on the windows; returns the candidate's result. */
  async run(x: HostTensor, scores?: HostTensor): Promise<Prediction> {
    const ref = await this.reference.run(x, scores);
    const cand = await this.candidate.run(x, scores);
    this.stats.add(ref.logits, cand.logits);
    return cand;
  }

  /** Frees both sessions. */
  async release(): Promise<void> {
    await this.reference.release();
    await this.candidate.release();
  }
}
