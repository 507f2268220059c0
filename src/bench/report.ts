// Human-readable benchmark output: a block per run, a table per sweep, with the PyTorch ratio
// next to cts-seg's numbers when the comparison ran.
import type { BenchResult, CompanionResult } from './bench.js';
import type { PytorchInfo } from './pytorch.js';
import { fmtGmac } from '../graph/macs.js';

/** A cts-seg result with its optional PyTorch counterpart (same settings, same run). */
export interface ComparedResult extends BenchResult {
  pytorch?: (PytorchInfo & CompanionResult) | { skipped: string };
  /** cts-seg images/s divided by PyTorch's (mean-based, the paper's Im/sec). */
  speedup_vs_pytorch?: number;
}

const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
const f2 = fmtGmac;

function backboneName(b: string): string {
  const m = /^vit_(tiny|small|base|large)_patch(\d+)/.exec(b);
  return m ? `ViT-${{ tiny: 'Ti', small: 'S', base: 'B', large: 'L' }[m[1] as 'tiny']}/${m[2]}` : b;
}

/** First lines of every report: the model, the machine and the protocol. */
export function headerLines(r: BenchResult): string[] {
  const m = r.machine;
  return [
    `model     ${backboneName(r.backbone)} ${r.decoder}, ${r.classes} classes, ${r.image_size[0]}x${r.image_size[1]}, weights ${r.weights}`,
    `machine   ${m.cpu_model} (${m.cores} cores, ${m.logical_cpus} logical, ${m.memory_gb} GB), ${m.platform}`,
    `runtime   onnxruntime-node ${m.ort_version}, Node ${m.node_version}, provider ${r.provider}, ${r.threads} threads`,
    `protocol  batch ${r.batch} (one image repeated; in micro-batches of ${r.micro_batch} inside the graph), warm-up ${r.warmup}, timed ${r.iters}, images/s = batch / mean ms per batch; logits ${r.logits_fetched ? 'copied into JS each iteration' : 'computed in full, kept in ORT memory (one logit per image fetched)'}; load average ${r.load_average[0]} -> ${r.load_average[1]}`,
  ];
}

/** Report of a single budget. */
export function formatResult(r: ComparedResult): string {
  const t = r.ms_per_batch;
  const lines = [
    ...headerLines(r),
    `tokens    ${r.tokens_per_image} per image (${r.num_shared ? `${r.num_shared} of ${r.num_not_shared / 4 + r.num_shared} superpatches shared, ${pct(r.reduction)} fewer` : 'no sharing'})`,
    `GMAC      ${f2(r.gmacs.total)} per image (encoder ${f2(r.gmacs.encoder)}, decoder ${f2(r.gmacs.decoder)}, policy ${f2(r.gmacs.policy)}, upsample ${f2(r.gmacs.upsample)}); ${r.gmacs_per_second} GMAC/s reached`,
    `precision ${r.precision}${r.precision === 'int8' ? ' (Linear layers, patch embedding, attention scores: int8 weights per output channel, activations quantized at run time)' : ''}`,
    `speed     ${r.images_per_second} images/s (median-based ${r.images_per_second_median})`,
    `ms/batch  median ${t.median.toFixed(1)}, p10 ${t.p10.toFixed(1)}, p90 ${t.p90.toFixed(1)}, mean ${t.mean.toFixed(1)}`,
  ];
  if (r.policy_net) {
    const p = r.policy_net.ms_per_batch;
    lines.push(`policy    ${p.median.toFixed(1)} ms/batch median alone (${pct(r.policy_net.share_of_forward)} of the forward, policy width ${r.policy_width})`);
  }
  lines.push(`memory    peak RSS ${r.peak_rss_mb} MiB`);
  if (r.pytorch) {
    if ('skipped' in r.pytorch) lines.push(`pytorch   skipped: ${r.pytorch.skipped}`);
    else {
      const pt = r.pytorch;
      lines.push(`pytorch   ${pt.images_per_second} images/s, ms/batch median ${pt.ms_per_batch.median.toFixed(1)} (p10 ${pt.ms_per_batch.p10.toFixed(1)}, p90 ${pt.ms_per_batch.p90.toFixed(1)}); iterations alternated with cts-seg's`);
      lines.push(`          torch ${pt.torch_version}, BLAS ${pt.blas}, ${pt.threads} threads, ${pt.malloc === 'tuned' ? 'tuned' : 'stock'} malloc,${r.precision === 'int8' ? ' int8 (quantize_dynamic on nn.Linear, onednn),' : ''} peak RSS ${pt.peak_rss_mb ?? '?'} MiB${pt.policy_net ? `, policy net alone ${pt.policy_net.ms_per_batch.median.toFixed(1)} ms/batch` : ''}`);
      lines.push(`ratio     cts-seg / PyTorch = ${r.speedup_vs_pytorch}x`);
    }
  }
  return lines.join('\n');
}

/** Table of a sweep: one row per budget, speed-up against the first (no-sharing) row. */
export function formatSweep(rs: ComparedResult[]): string {
  const base = rs.find((r) => r.num_shared === 0) ?? rs[0]!;
  const withPt = rs.some((r) => r.pytorch && !('skipped' in r.pytorch));
  const head = ['reduction', 'shared', 'tokens', 'GMAC', 'images/s', 'ms/batch p50', 'p10-p90', 'speed-up', 'GMAC ratio', 'policy ms'];
  if (withPt) head.push('PyTorch img/s', 'cts-seg/PyTorch');
  const rows = rs.map((r) => {
    const row = [
      pct(r.reduction), String(r.num_shared), String(r.tokens_per_image), f2(r.gmacs.total), r.images_per_second.toFixed(3),
      r.ms_per_batch.median.toFixed(0), `${r.ms_per_batch.p10.toFixed(0)}-${r.ms_per_batch.p90.toFixed(0)}`,
      `${(r.images_per_second / base.images_per_second).toFixed(3)}x`, `${(base.gmacs.total / r.gmacs.total).toFixed(3)}x`,
      r.policy_net ? r.policy_net.ms_per_batch.median.toFixed(0) : '-',
    ];
    if (withPt) {
      const pt = r.pytorch && !('skipped' in r.pytorch) ? r.pytorch : undefined;
      row.push(pt ? pt.images_per_second.toFixed(3) : '-', r.speedup_vs_pytorch ? `${r.speedup_vs_pytorch}x` : '-');
    }
    return row;
  });
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
  const pt = rs.map((r) => r.pytorch).find((p) => p && !('skipped' in p)) as (PytorchInfo & CompanionResult) | undefined;
  const foot = [`peak RSS: cts-seg ${Math.max(...rs.map((r) => r.peak_rss_mb))} MiB${pt ? `, PyTorch ${pt.peak_rss_mb ?? '?'} MiB (torch ${pt.torch_version}, BLAS ${pt.blas}, ${pt.threads} threads; iterations alternated with cts-seg's)` : ''}`];
  const skipped = rs.map((r) => r.pytorch).find((p) => p && 'skipped' in p) as { skipped: string } | undefined;
  if (skipped) foot.push(`PyTorch comparison skipped: ${skipped.skipped}`);
  return [...headerLines(base), '', line(head), ...rows.map(line), '', ...foot].join('\n');
}

/**
 * Report of one budget timed at both precisions in the same run (iterations interleaved): each
 * precision's report, then the int8 / fp32 ratio of images/s, mean- and median-based.
 */
export function formatPrecisionComparison(fp32: ComparedResult, int8: ComparedResult): string {
  const r = precisionRatio(fp32, int8);
  return [formatResult(fp32), '', formatResult(int8), '', `ratio     int8 / fp32 = ${r.mean}x (median-based ${r.median}x), same run`].join('\n');
}

/** int8 images/s over fp32 images/s, mean- and median-based, to 3 decimals. */
export function precisionRatio(fp32: BenchResult, int8: BenchResult): { mean: number; median: number } {
  const q = (a: number, b: number) => Math.round((a / b) * 1000) / 1000;
  return { mean: q(int8.images_per_second, fp32.images_per_second), median: q(int8.images_per_second_median, fp32.images_per_second_median) };
}
