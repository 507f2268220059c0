// The demo's HTML report: one self-contained file (images inlined as PNG data URLs, plots as SVG).
import { writeFileAtomic } from '../io/fs.node.js';
import { encodePng } from '../data/image.js';
import type { RGBImage } from '../data/types.js';
import { colorize, overlay, sharedView } from '../eval/visualize.js';

/** Results of one trained model. */
export interface ModelResult {
  name: 'baseline' | 'cts';
  miou: number;
  macc: number;
  aacc: number;
  iou: number[];
  tokens: number;
  imagesPerSecond: number;
  msPerBatch: number;
  trainSeconds: number;
  loss: [number, number][];
  modelPath: string;
}

/** Everything the report shows. */
export interface DemoResults {
  options: Record<string, unknown>;
  classes: string[];
  palette: [number, number, number][];
  models: ModelResult[];
  samples: { model: 'baseline' | 'cts'; id: string; image: RGBImage; classes: Uint8Array; shared?: Float32Array }[];
  policy: { accuracy: number; gmacs: number; width: number; steps: number; loss: [number, number][] };
  budget: { numShared: number; tokens: number; full: number; reduction: number };
  seconds: number;
}

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
const pct = (x: number) => (Number.isFinite(x) ? (100 * x).toFixed(1) : '–');

async function img(width: number, height: number, rgb: Uint8Array): Promise<string> {
  const png = await encodePng({ width, height, data: rgb });
  return `<img src="data:image/png;base64,${Buffer.from(png).toString('base64')}" width="${width}" height="${height}">`;
}

/** A small line plot of loss curves. */
function lossPlot(series: { name: string; color: string; pts: [number, number][] }[]): string {
  const W = 520, H = 220, pad = 36;
  const all = series.flatMap((s) => s.pts);
  if (!all.length) return '';
  const maxX = Math.max(...all.map((p) => p[0])), maxY = Math.max(...all.map((p) => p[1])), minY = Math.min(0, ...all.map((p) => p[1]));
  const x = (v: number) => pad + ((W - 2 * pad) * v) / maxX, y = (v: number) => H - pad - ((H - 2 * pad) * (v - minY)) / (maxY - minY || 1);
  const lines = series.map((s) => `<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${s.pts.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' ')}"/>`).join('');
  const legend = series.map((s, i) => `<text x="${W - pad - 150}" y="${pad + 16 * i}" fill="${s.color}" font-size="12">${esc(s.name)}</text>`).join('');
  return `<svg width="${W}" height="${H}" style="background:#fff;border:1px solid #ddd">
<line x1="${pad}" y1="${H - pad}" x2="${W - pad}" y2="${H - pad}" stroke="#999"/><line x1="${pad}" y1="${pad}" x2="${pad}" y2="${H - pad}" stroke="#999"/>
<text x="${W / 2}" y="${H - 8}" font-size="12" text-anchor="middle">step</text><text x="10" y="${pad - 10}" font-size="12">loss (max ${maxY.toFixed(2)})</text>
${lines}${legend}</svg>`;
}

/** Writes the report to `path` (atomically). */
export async function writeDemoReport(path: string, r: DemoResults): Promise<void> {
  const [base, cts] = r.models as [ModelResult, ModelResult];
  const speedup = cts.imagesPerSecond / base.imagesPerSecond, miouRatio = cts.miou / base.miou;
  const rows: string[] = [];
  for (const s of r.samples.filter((x) => x.model === 'baseline')) {
    const c = r.samples.find((x) => x.model === 'cts' && x.id === s.id)!;
    const { width: w, height: h } = s.image;
    rows.push(`<tr><td>${esc(s.id)}<br>${await img(w, h, s.image.data)}</td>
<td>${await img(w, h, overlay(s.image, colorize(s.classes, r.palette)))}</td>
<td>${await img(w, h, overlay(c.image, colorize(c.classes, r.palette)))}</td>
<td>${await img(w, h, sharedView(c.image, c.shared))}</td></tr>`);
  }
  const legend = r.classes.map((n, i) => `<span class="sw" style="background:rgb(${r.palette[i]!.join(',')})"></span>${esc(n)}`).join(' ');
  const ious = r.classes.map((n, i) => `<tr><td>${esc(n)}</td><td>${pct(base.iou[i]!)}</td><td>${pct(cts.iou[i]!)}</td></tr>`).join('');
  const o = r.options as Record<string, number>;
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>cts-seg demo report</title>
<style>body{font:14px/1.45 system-ui,sans-serif;max-width:1100px;margin:24px auto;padding:0 16px;color:#222}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
.big{font-size:20px}.sw{display:inline-block;width:12px;height:12px;margin:0 4px 0 10px;border:1px solid #888}</style></head><body>
<h1>cts-seg demo: Segmenter with and without content-aware token sharing</h1>
<p class="big">CTS: <b>${speedup.toFixed(2)}x</b> the images/s of the baseline (policy network included), at <b>${(100 * miouRatio).toFixed(1)}%</b> of its mIoU
(${pct(cts.miou)} vs ${pct(base.miou)}), with ${r.budget.tokens} instead of ${r.budget.full} tokens (${pct(r.budget.reduction)}% fewer).</p>
<table><tr><th></th><th>baseline (no sharing)</th><th>CTS</th></tr>
<tr><td>tokens per image</td><td>${base.tokens}</td><td>${cts.tokens} (${r.budget.numShared} superpatches shared)</td></tr>
<tr><td>mIoU / mAcc / aAcc (val)</td><td>${pct(base.miou)} / ${pct(base.macc)} / ${pct(base.aacc)}</td><td>${pct(cts.miou)} / ${pct(cts.macc)} / ${pct(cts.aacc)}</td></tr>
<tr><td>images/s (batch ${o.benchBatch}, CPU)</td><td>${base.imagesPerSecond.toFixed(1)}</td><td>${cts.imagesPerSecond.toFixed(1)}</td></tr>
<tr><td>ms per batch (median of ${o.benchIters}, the two models' batches alternated)</td><td>${base.msPerBatch.toFixed(1)}</td><td>${cts.msPerBatch.toFixed(1)}</td></tr>
<tr><td>training time</td><td>${base.trainSeconds.toFixed(0)} s</td><td>${cts.trainSeconds.toFixed(0)} s</td></tr></table>
<h2>What was chosen</h2>
<p>Synthetic street scenes of ${o.size}x${o.size} px (${o.train} train, ${o.val} val). Segmenter: a ViT of width ${o.dModel}, ${o.layers} layers,
${o.heads} heads, patch 16, mask-transformer decoder; both models trained ${o.segSteps} steps of batch ${o.batch} with AdamW from scratch, same seed.
Sharing pays off when the backbone is large next to the policy network (ViT-S and up in the paper). At this small size the paper's
EfficientNet-Lite0 would cost about as much as the whole ViT, so the demo uses a lighter policy network: Lite0 at width ${r.policy.width}
(${r.policy.gmacs.toFixed(3)} GMAC per image, trained ${r.policy.steps} steps, val cell accuracy ${pct(r.policy.accuracy)}%).
Its cost is inside the CTS images/s above.</p>
<h2>Training loss</h2>
${lossPlot([{ name: 'baseline', color: '#1f77b4', pts: base.loss }, { name: 'CTS', color: '#d62728', pts: cts.loss }, { name: 'policy net', color: '#2ca02c', pts: r.policy.loss }])}
<h2>Predictions on validation images</h2><p>${legend}</p>
<p>Last column: superpatches (32x32 px) that shared one token in the CTS model are tinted; the rest kept one token per 16x16 patch.</p>
<table><tr><th>image</th><th>baseline</th><th>CTS</th><th>shared tokens</th></tr>${rows.join('')}</table>
<h2>Per-class IoU (val)</h2><table><tr><th>class</th><th>baseline</th><th>CTS</th></tr>${ious}</table>
<p>Total demo time ${r.seconds.toFixed(0)} s. Models: <code>${esc(base.modelPath)}</code>, <code>${esc(cts.modelPath)}</code>.</p>
</body></html>`;
  await writeFileAtomic(path, html);
}
