#!/usr/bin/env node
// Plots `cts-seg bench --sweep --json` results as an SVG: images/s against token reduction (left)
// and the speed-up over no sharing next to the GMAC ratio, the ideal (right). Hand-written SVG:
// a two-panel line chart needs no plotting library.
//   node bench/plot-sweep.mjs docs/benchmarks.svg bench/results/sweep-*.json
import { readFileSync, writeFileSync, renameSync } from 'node:fs';

const [out, ...inputs] = process.argv.slice(2);
if (!out || inputs.length === 0) {
  console.error('usage: node bench/plot-sweep.mjs OUT.svg SWEEP.json [SWEEP.json...]');
  process.exit(2);
}

const NAMES = { vit_tiny_patch16_384: 'ViT-Ti', vit_small_patch16_384: 'ViT-S', vit_base_patch16_384: 'ViT-B', vit_large_patch16_384: 'ViT-L' };
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];
const series = inputs.map((f, i) => {
  const j = JSON.parse(readFileSync(f, 'utf8'));
  const runs = j.sweep ?? [j];
  const r0 = runs[0];
  const base = runs.find((r) => r.num_shared === 0) ?? r0;
  const width = runs.find((r) => r.policy_width)?.policy_width;
  return {
    label: `${NAMES[r0.backbone] ?? r0.backbone} ${r0.image_size[0]}², ${r0.classes} classes${width && width !== 1 ? `, policy net ×${width}` : ''}${r0.logits_fetched ? ', logits fetched' : ''}`,
    color: COLORS[i % COLORS.length],
    points: runs.map((r) => ({ x: 100 * r.reduction, ips: r.images_per_second, speedup: r.images_per_second / base.images_per_second, ideal: base.gmacs.total / r.gmacs.total })),
    meta: r0,
  };
});

const W = 900, H = 450, M = { l: 60, r: 20, t: 40, b: 120 }, gap = 70;
const pw = (W - M.l - M.r - gap) / 2, ph = H - M.t - M.b;
const xMax = 50;
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;');
const parts = [];
const text = (x, y, s, o = '') => parts.push(`<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${o}>${esc(s)}</text>`);

function panel(x0, title, yLabel, yMax, get, ideal) {
  const X = (v) => x0 + (v / xMax) * pw, Y = (v) => M.t + ph - (v / yMax) * ph;
  parts.push(`<rect x="${x0}" y="${M.t}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
  text(x0 + pw / 2, M.t - 12, title, 'text-anchor="middle" font-weight="bold"');
  for (let v = 0; v <= xMax; v += 10) {
    parts.push(`<line x1="${X(v)}" x2="${X(v)}" y1="${M.t}" y2="${M.t + ph}" stroke="#eee"/>`);
    text(X(v), M.t + ph + 16, `${v}%`, 'text-anchor="middle"');
  }
  const step = niceStep(yMax);
  for (let v = 0; v <= yMax + 1e-9; v += step) {
    parts.push(`<line x1="${x0}" x2="${x0 + pw}" y1="${Y(v)}" y2="${Y(v)}" stroke="#eee"/>`);
    text(x0 - 6, Y(v) + 4, step < 1 ? v.toFixed(1) : v.toFixed(0), 'text-anchor="end"');
  }
  text(x0 + pw / 2, M.t + ph + 34, 'token reduction (3S / patches)', 'text-anchor="middle"');
  text(x0 - 44, M.t + ph / 2, yLabel, `text-anchor="middle" transform="rotate(-90 ${x0 - 44} ${M.t + ph / 2})"`);
  for (const s of series) {
    const pts = s.points.map((p) => `${X(p.x).toFixed(1)},${Y(get(p)).toFixed(1)}`).join(' ');
    parts.push(`<polyline points="${pts}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
    for (const p of s.points) parts.push(`<circle cx="${X(p.x).toFixed(1)}" cy="${Y(get(p)).toFixed(1)}" r="3.5" fill="${s.color}"/>`);
    if (ideal) {
      const ip = s.points.map((p) => `${X(p.x).toFixed(1)},${Y(p.ideal).toFixed(1)}`).join(' ');
      parts.push(`<polyline points="${ip}" fill="none" stroke="${s.color}" stroke-width="1.2" stroke-dasharray="5,4"/>`);
    }
  }
}

function niceStep(max) {
  const raw = max / 5, mag = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
}

const ipsMax = Math.max(...series.flatMap((s) => s.points.map((p) => p.ips))) * 1.1;
const spMax = Math.max(2, ...series.flatMap((s) => s.points.flatMap((p) => [p.speedup, p.ideal]))) * 1.05;
panel(M.l, 'images/s (batch / mean time)', 'images/s', ipsMax, (p) => p.ips, false);
panel(M.l + pw + gap, 'speed-up over no sharing (dashed: GMAC ratio)', 'speed-up', spMax, (p) => p.speedup, true);
series.forEach((s, i) => {
  const x = M.l + (i % 3) * 280, y = H - 66 + Math.floor(i / 3) * 18;
  parts.push(`<line x1="${x}" x2="${x + 24}" y1="${y - 4}" y2="${y - 4}" stroke="${s.color}" stroke-width="2"/>`);
  text(x + 30, y, s.label);
});
const m = series[0].meta;
text(W - M.r, H - 8, `${m.machine.cpu_model}, ${m.threads} threads, ${m.provider}, batch ${m.batch}, onnxruntime-node ${m.machine.ort_version}, ${m.date.slice(0, 10)}`, 'text-anchor="end" fill="#666" font-size="11"');

const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
${parts.join('\n')}
</svg>
`;
// temp file + rename: a crash never leaves half an SVG behind
writeFileSync(`${out}.tmp`, svg);
renameSync(`${out}.tmp`, out);
console.error(`wrote ${out} (${series.length} series)`);
