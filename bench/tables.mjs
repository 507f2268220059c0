#!/usr/bin/env node
// Prints the Markdown tables of docs/BENCHMARKS.md from `cts-seg bench --json` results, so the
// document quotes the JSON files verbatim instead of hand-copied numbers.
//   node bench/tables.mjs bench/results/sweep-*.json
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

const NAMES = { vit_tiny_patch16_384: 'ViT-Ti/16', vit_small_patch16_384: 'ViT-S/16', vit_base_patch16_384: 'ViT-B/16', vit_large_patch16_384: 'ViT-L/16' };
const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: node bench/tables.mjs RESULT.json...');
  process.exit(2);
}
const pct = (v) => `${(100 * v).toFixed(1)}%`;
const ms = (t) => `${t.median.toFixed(0)} (${t.p10.toFixed(0)}–${t.p90.toFixed(0)})`;

for (const f of files) {
  const j = JSON.parse(readFileSync(f, 'utf8'));
  const runs = j.sweep ?? [j];
  const r0 = runs[0];
  const base = runs.find((r) => r.num_shared === 0);
  const pt = runs.some((r) => r.pytorch && !r.pytorch.skipped);
  console.log(`\n#### ${NAMES[r0.backbone] ?? r0.backbone}, ${r0.image_size.join('x')}, ${r0.classes} classes, ${r0.decoder}` +
    `${r0.policy_width && r0.policy_width !== 1 ? `, policy width ${r0.policy_width}` : ''}${r0.logits_fetched ? ', logits fetched into JS' : ''} (\`${basename(f)}\`)\n`);
  const head = ['reduction', 'S', 'tokens', 'GMAC/img', 'images/s', 'ms/batch median (p10–p90)', 'speed-up vs 0%', 'GMAC ratio', 'policy net ms/batch'];
  if (pt) head.push('PyTorch images/s', 'cts-seg / PyTorch');
  console.log(`| ${head.join(' | ')} |`);
  console.log(`|${head.map(() => '---').join('|')}|`);
  for (const r of runs) {
    const row = [
      pct(r.reduction), r.num_shared, r.tokens_per_image, r.gmacs.total.toFixed(2), r.images_per_second.toFixed(3), ms(r.ms_per_batch),
      base ? `${(r.images_per_second / base.images_per_second).toFixed(3)}x` : '-', base ? `${(base.gmacs.total / r.gmacs.total).toFixed(3)}x` : '-',
      r.policy_net ? `${r.policy_net.ms_per_batch.median.toFixed(0)} (${pct(r.policy_net.share_of_forward)})` : '-',
    ];
    if (pt) row.push(r.pytorch?.images_per_second?.toFixed(3) ?? '-', r.speedup_vs_pytorch ? `${r.speedup_vs_pytorch.toFixed(2)}x` : '-');
    console.log(`| ${row.join(' | ')} |`);
  }
  const m = r0.machine;
  const p = runs.find((r) => r.pytorch && !r.pytorch.skipped)?.pytorch;
  console.log(`\nbatch ${r0.batch}, warm-up ${r0.warmup}, timed ${r0.iters} (interleaved across budgets${p ? ' and with PyTorch' : ''}); ${m.cpu_model}, ${r0.threads} threads, ` +
    `onnxruntime-node ${m.ort_version}, Node ${m.node_version}; peak RSS cts-seg ${Math.max(...runs.map((r) => r.peak_rss_mb))} MiB` +
    `${p ? `, PyTorch ${p.peak_rss_mb} MiB (torch ${p.torch_version}, ${p.blas.replace(/.*\/([^/]+)\/libblas.*/, '$1')} BLAS, ${p.threads} threads)` : ''}; ${r0.date.slice(0, 10)}.`);
}
