// Reporting of evaluation runs: the per-class Markdown table, metrics.json / metrics.md (written
// atomically), and the progress display shared by `eval` and `infer`.
import { join } from 'node:path';
import cliProgress from 'cli-progress';
import { makeOutputDir, removeCreatedDir, writeFileAtomic } from '../io/fs.node.js';
import type { SegMetrics } from './metrics.js';
import type { LogitComparison } from './compare.js';

/** Everything recorded about one evaluation run. */
export interface EvalReport {
  checkpoint: string;
  dataset: string;
  split: string;
  images: number;
  classes: string[];
  metrics: SegMetrics;
  /** K x K confusion counts, row = ground truth, column = prediction. */
  confusion: Float64Array;
  protocol: {
    window: [number, number];
    stride: number;
    multiscale: boolean;
    views: number;
    resizeShort?: number;
    maxLong?: number;
  };
  policy: string;
  numShared: number;
  /** Tokens per window entering the encoder (CLS excluded). */
  tokensPerWindow: number;
  /** Tokens per window without sharing. */
  tokensNoSharing: number;
  windows: number;
  seconds: number;
  provider: string;
  windowBatch: number;
  /** Arithmetic of the Linear layers (absent: fp32). */
  precision?: string;
  /** `eval --compare-precision`: int8 evaluated on the same windows as fp32. */
  precisionComparison?: { metrics: SegMetrics; logits: LogitComparison; seconds: number };
}

/** Percent rounded to 2 decimals as the official code prints it; null for NaN (JSON has no NaN). */
export function pct(x: number): number | null {
  return Number.isNaN(x) ? null : Math.round(x * 10000) / 100;
}

const fmt = (x: number) => (Number.isNaN(x) ? 'n/a' : (x * 100).toFixed(2));

/** The metrics.json object (ratios as percentages, NaN classes as null). */
export function reportJson(r: EvalReport): Record<string, unknown> {
  const m = r.metrics;
  return {
    checkpoint: r.checkpoint,
    dataset: r.dataset,
    split: r.split,
    images: r.images,
    mIoU: pct(m.mIoU),
    mAcc: pct(m.mAcc),
    aAcc: pct(m.aAcc),
    per_class: r.classes.map((name, k) => ({
      name, iou: pct(m.iou[k]!), acc: pct(m.acc[k]!), gt_pixels: m.gtPixels[k], pred_pixels: m.predPixels[k],
    })),
    protocol: {
      window: r.protocol.window, stride: r.protocol.stride, multiscale: r.protocol.multiscale, views: r.protocol.views,
      ...(r.protocol.resizeShort ? { resize_short: r.protocol.resizeShort } : {}),
      ...(r.protocol.maxLong ? { max_long: r.protocol.maxLong } : {}),
    },
    policy: r.policy,
    num_shared: r.numShared,
    tokens_per_window: r.tokensPerWindow,
    tokens_no_sharing: r.tokensNoSharing,
    token_reduction: r.tokensNoSharing ? 1 - r.tokensPerWindow / r.tokensNoSharing : 0,
    windows: r.windows,
    seconds: Math.round(r.seconds * 1000) / 1000,
    images_per_second: r.seconds > 0 ? r.images / r.seconds : null,
    provider: r.provider,
    window_batch: r.windowBatch,
    precision: r.precision ?? 'fp32',
    ...(r.precisionComparison ? { precision_comparison: comparisonJson(r.precisionComparison) } : {}),
    confusion: Array.from({ length: r.classes.length }, (_, g) => Array.from(r.confusion.subarray(g * r.classes.length, (g + 1) * r.classes.length))),
  };
}

function comparisonJson(c: NonNullable<EvalReport['precisionComparison']>): Record<string, unknown> {
  const l = c.logits;
  return {
    int8_mIoU: pct(c.metrics.mIoU), int8_mAcc: pct(c.metrics.mAcc), int8_aAcc: pct(c.metrics.aAcc), windows: l.windows, pixels: l.pixels,
    argmax_agreement: l.argmaxAgreement, logit_max_abs_error: l.maxAbsError, logit_mean_abs_error: l.meanAbsError, fp32_logit_rms: l.referenceRms, seconds: c.seconds,
  };
}

/** The human-readable report: per-class IoU/Acc table plus the summary lines, in Markdown. */
export function reportMarkdown(r: EvalReport): string {
  const m = r.metrics;
  const lines = [
    `# Evaluation: ${r.dataset} ${r.split} (${r.images} images)`,
    '',
    `checkpoint: ${r.checkpoint}`,
    `protocol: window ${r.protocol.window.join('x')}, stride ${r.protocol.stride}, ${r.protocol.multiscale ? `multi-scale + flip (${r.protocol.views} views)` : 'single scale'}` +
      (r.protocol.resizeShort ? `, resize short side ${r.protocol.resizeShort}${r.protocol.maxLong ? ` (long <= ${r.protocol.maxLong})` : ''}` : ', original size'),
    '',
    '| class | IoU | Acc |',
    '| --- | ---: | ---: |',
    ...r.classes.map((name, k) => `| ${name.replace(/\|/g, '\\|')} | ${fmt(m.iou[k]!)} | ${fmt(m.acc[k]!)} |`),
    '',
    `mIoU ${fmt(m.mIoU)}  mAcc ${fmt(m.mAcc)}  aAcc ${fmt(m.aAcc)}`,
    `tokens per window: ${r.tokensPerWindow}` +
      (r.numShared > 0 ? ` (policy ${r.policy}, ${r.numShared} shared; ${(100 * (1 - r.tokensPerWindow / r.tokensNoSharing)).toFixed(1)}% fewer than ${r.tokensNoSharing} without sharing)` : ' (no sharing)'),
    `speed: ${(r.images / r.seconds).toFixed(2)} images/s (${r.windows} windows in ${r.seconds.toFixed(1)} s, ${r.provider}, window batch ${r.windowBatch}, ${r.precision ?? 'fp32'})`,
    '',
  ];
  const c = r.precisionComparison;
  if (c) {
    const l = c.logits;
    lines.push(
      `int8 against fp32 (same windows, ${l.windows} windows): mIoU ${fmt(c.metrics.mIoU)} vs ${fmt(m.mIoU)} (${((c.metrics.mIoU - m.mIoU) * 100).toFixed(2)} points)` +
        `, argmax agreement ${(l.argmaxAgreement * 100).toFixed(3)}%, logit error max ${l.maxAbsError.toPrecision(3)} mean ${l.meanAbsError.toPrecision(3)} (fp32 logits RMS ${l.referenceRms.toPrecision(3)})`,
      '',
    );
  }
  return lines.join('\n');
}

/** Writes metrics.json and metrics.md into `dir` (created if missing), each atomically. */
export async function writeReport(dir: string, r: EvalReport): Promise<void> {
  const created = await makeOutputDir(dir, 'output directory');
  try {
    await writeFileAtomic(join(dir, 'metrics.json'), `${JSON.stringify(reportJson(r), null, 2)}\n`);
    await writeFileAtomic(join(dir, 'metrics.md'), reportMarkdown(r));
  } catch (e) {
    await removeCreatedDir(created);
    throw e;
  }
}

/** Progress of a loop over items, on stderr. */
export interface Progress {
  tick(label?: string): void;
  stop(): void;
}

/**
 * A cli-progress bar when stderr is a TTY (and not CI), else one line every `every` items and at
 * the end, so logs stay short.
 */
export function createProgress(total: number, what: string, every = 10): Progress {
  const start = performance.now();
  let done = 0;
  if (process.stderr.isTTY && !process.env.CI) {
    const bar = new cliProgress.SingleBar(
      { stream: process.stderr, format: `${what} [{bar}] {value}/{total} | {rate} img/s | eta {eta_formatted} | {label}`, hideCursor: true },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { rate: '0.00', label: '' });
    return {
      tick(label = '') {
        done++;
        bar.update(done, { rate: (done / ((performance.now() - start) / 1000)).toFixed(2), label });
      },
      stop: () => bar.stop(),
    };
  }
  return {
    tick(label = '') {
      done++;
      if (done % every === 0 || done === total) {
        const s = (performance.now() - start) / 1000;
        process.stderr.write(`${what} ${done}/${total} (${(done / s).toFixed(2)} img/s, ${s.toFixed(1)} s)${label ? ` ${label}` : ''}\n`);
      }
    },
    stop: () => undefined,
  };
}
