// A small deterministic synthetic street-scene dataset for the demo and tests: textured sky,
// buildings with windows, road with lane marks, sidewalk, vegetation, cars and poles. Large uniform
// regions next to small objects are exactly what content-aware token sharing exploits. Written in
// the `folder` dataset layout so every normal tool (loader, eval, infer) reads it.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { writeFileAtomic } from '../io/fs.node.js';
import { createRng, type Rng } from '../base/rng.js';
import { writePng } from './image.js';

/** Classes of the synthetic scenes, with their display colours. */
export const SYNTHETIC_CLASSES: { name: string; color: [number, number, number] }[] = [
  { name: 'sky', color: [70, 130, 180] },
  { name: 'building', color: [70, 70, 70] },
  { name: 'road', color: [128, 64, 128] },
  { name: 'sidewalk', color: [244, 35, 232] },
  { name: 'vegetation', color: [107, 142, 35] },
  { name: 'car', color: [0, 0, 142] },
  { name: 'pole', color: [153, 153, 153] },
];

/** Options of the generator. */
export interface SyntheticOptions {
  train: number;
  val: number;
  height: number;
  width: number;
  seed: number;
}

/** One scene: RGB pixels and class ids. */
export interface SyntheticScene {
  rgb: Uint8Array;
  label: Uint8Array;
}

/** Renders one scene (pure function of the rng state). */
export function renderScene(h: number, w: number, r: Rng): SyntheticScene {
  const rgb = new Uint8Array(h * w * 3), label = new Uint8Array(h * w);
  const noise = (amp: number) => (r.uniform() - 0.5) * amp;
  const put = (y: number, x: number, cls: number, c: [number, number, number], jitter = 12) => {
    if (y < 0 || x < 0 || y >= h || x >= w) return;
    const i = y * w + x, n = noise(jitter);
    label[i] = cls;
    for (let k = 0; k < 3; k++) rgb[i * 3 + k] = Math.max(0, Math.min(255, Math.round(c[k]! + n)));
  };
  const horizon = Math.floor(h * (0.35 + 0.15 * r.uniform()));
  // sky: vertical gradient with soft cloud bands
  const cloudPhase = r.uniform() * 6.28;
  for (let y = 0; y < horizon; y++) for (let x = 0; x < w; x++) {
    const cloud = Math.max(0, Math.sin(x / 9 + cloudPhase + y / 5)) * 30;
    put(y, x, 0, [110 + cloud + (y / horizon) * 40, 150 + cloud + (y / horizon) * 40, 210 + cloud * 0.5], 6);
  }
  // ground: sidewalk band, then road
  const roadTop = horizon + Math.floor((h - horizon) * (0.2 + 0.15 * r.uniform()));
  for (let y = horizon; y < h; y++) for (let x = 0; x < w; x++) {
    if (y < roadTop) put(y, x, 3, [200, 180, 190], 16);
    else {
      const lane = Math.abs(x - w / 2) < 2 && Math.floor(y / 6) % 2 === 0;
      put(y, x, 2, lane ? [220, 220, 220] : [90, 80, 95], lane ? 4 : 14);
    }
  }
  // buildings standing on the horizon, with windows
  let x0 = Math.floor(noise(w * 0.2));
  while (x0 < w) {
    const bw = Math.floor(w * (0.15 + 0.25 * r.uniform())), bh = Math.floor(horizon * (0.4 + 0.55 * r.uniform()));
    if (r.uniform() < 0.75) {
      const base: [number, number, number] = [90 + noise(60), 80 + noise(50), 75 + noise(50)];
      for (let y = horizon - bh; y < horizon; y++) for (let x = x0; x < x0 + bw; x++) {
        const win = (y - (horizon - bh)) % 10 > 4 && (x - x0) % 9 > 4;
        put(y, x, 1, win ? [40, 50, 70] : base, 10);
      }
    }
    x0 += bw + Math.floor(w * 0.02 * r.uniform());
  }
  // vegetation: textured tree crowns on trunks, left or right
  const trees = Math.floor(1 + 3 * r.uniform());
  for (let t = 0; t < trees; t++) {
    const cx = Math.floor(w * r.uniform()), cy = Math.floor(horizon - h * 0.05 * r.uniform()), rad = Math.floor(h * (0.08 + 0.1 * r.uniform()));
    for (let y = cy - rad; y <= cy + rad; y++) for (let x = cx - rad; x <= cx + rad; x++) {
      if ((y - cy) ** 2 + (x - cx) ** 2 <= rad * rad * (0.8 + 0.2 * Math.sin(x + y))) put(y, x, 4, [60, 120 + noise(60), 40], 30);
    }
  }
  // poles on the sidewalk
  const poles = Math.floor(3 * r.uniform());
  for (let p = 0; p < poles; p++) {
    const px = Math.floor(w * r.uniform()), top = Math.floor(horizon * 0.5 * r.uniform());
    for (let y = top; y < roadTop; y++) for (let x = px; x < px + 2; x++) put(y, x, 6, [150, 150, 150], 6);
  }
  // cars on the road
  const cars = Math.floor(1 + 3 * r.uniform());
  for (let c = 0; c < cars; c++) {
    const cw = Math.floor(w * (0.12 + 0.1 * r.uniform())), ch = Math.floor(cw * 0.5);
    const cx = Math.floor((w - cw) * r.uniform()), cy = roadTop + Math.floor((h - roadTop - ch) * r.uniform());
    const body: [number, number, number] = [40 + noise(80), 40 + noise(80), 120 + noise(120)];
    for (let y = cy; y < cy + ch; y++) for (let x = cx; x < cx + cw; x++) {
      const glass = y < cy + ch * 0.4 && x > cx + cw * 0.2 && x < cx + cw * 0.8;
      put(y, x, 5, glass ? [170, 200, 220] : body, 8);
    }
  }
  return { rgb, label };
}

/**
 * Writes the dataset to `dir` (images/{train,val}/*.png, labels/{train,val}/*.png, classes.json).
 * Deterministic: the same options give byte-identical files. Skips work when `dir` already holds
 * a complete dataset made with the same options (a marker file records them).
 */
export async function generateSynthetic(dir: string, o: SyntheticOptions): Promise<void> {
  const marker = join(dir, '.synthetic.json');
  const want = JSON.stringify(o);
  if (existsSync(marker)) {
    const { readFile } = await import('node:fs/promises');
    if ((await readFile(marker, 'utf8')) === want) return;
  }
  for (const split of ['train', 'val'] as const) {
    await mkdir(join(dir, 'images', split), { recursive: true });
    await mkdir(join(dir, 'labels', split), { recursive: true });
    const n = o[split];
    for (let i = 0; i < n; i++) {
      const r = createRng(o.seed * 1_000_003 + (split === 'train' ? 0 : 500_009) + i);
      const s = renderScene(o.height, o.width, r);
      const id = `${split}_${String(i).padStart(4, '0')}`;
      await writePng(join(dir, 'images', split, `${id}.png`), o.width, o.height, 3, s.rgb);
      await writePng(join(dir, 'labels', split, `${id}.png`), o.width, o.height, 1, s.label);
    }
  }
  const classes = { classes: SYNTHETIC_CLASSES, cropSize: Math.min(o.height, o.width) };
  await writeFileAtomic(join(dir, 'classes.json'), JSON.stringify(classes, null, 2) + '\n');
  await writeFile(marker, want);
}
