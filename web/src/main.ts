// The cts-seg browser demo: two exported graphs (CTS with the policy network inside, and the same
// weights without sharing) run by onnxruntime-web on an image's RGB bytes; the page draws the class
// map, an overlay, the shared-token map and the time of each graph. Plain DOM, no framework.
import type * as Ort from 'onnxruntime-web';
// Two builds of onnxruntime-web, loaded on demand: the plain wasm one (the CPU path; measured ~4x
// faster in Chromium than the WebGPU-capable builds, whose asyncify/JSEP layer slows every CPU
// kernel) and the WebGPU one. Vite emits their wasm binaries as assets of the page.
import wasmUrl from 'onnxruntime-web/ort-wasm-simd-threaded.wasm?url';
import webgpuWasmUrl from 'onnxruntime-web/ort-wasm-simd-threaded.asyncify.wasm?url';

/** models/manifest.json, written by `npm run web:model` next to the two graphs. */
interface Manifest {
  classes: string[];
  palette: [number, number, number][];
  /** Model input (height, width). */
  size: [number, number];
  /** Superpatch side in pixels (2 x patch). */
  superpatch: number;
  cts: { file: string; numTokens: number; numShared: number };
  baseline: { file: string; numTokens: number };
  /** ONNX external data that both graphs refer to (their weights, stored once). */
  weights: { file: string; dtype: 'float32' | 'float16' };
  sample: string;
}

type Provider = 'webgpu' | 'wasm';

/** What the page exposes for tests and scripts (window.ctsSeg). */
interface PageState {
  state: 'loading' | 'ready' | 'running' | 'done' | 'error';
  provider?: Provider;
  /** Why preferred providers were not used (e.g. no WebGPU adapter). */
  fallbacks?: string[];
  error?: string;
  width?: number;
  height?: number;
  /** CTS class map [H*W] and shared superpatches [H/32*W/32] of the last image. */
  classMap?: Uint8Array;
  maskShared?: Uint8Array;
  /** Class map of the graph without sharing. */
  baselineClassMap?: Uint8Array;
  msCts?: number;
  msBaseline?: number;
}

declare global {
  interface Window {
    ctsSeg: PageState;
  }
}

/** The onnxruntime-web build for a provider, configured for this page. */
async function loadOrt(provider: Provider): Promise<typeof Ort> {
  const ort: typeof Ort = provider === 'webgpu' ? await import('onnxruntime-web/webgpu') : await import('onnxruntime-web/wasm');
  ort.env.wasm.wasmPaths = { wasm: provider === 'webgpu' ? webgpuWasmUrl : wasmUrl };
  // single-threaded wasm: no cross-origin isolation needed, works from any static server
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.proxy = false;
  return ort;
}

const TIMED_RUNS = 5;
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const page: PageState = (window.ctsSeg = { state: 'loading' });

function setState(s: PageState['state'], status: string): void {
  page.state = s;
  document.body.dataset.state = s;
  $('status').textContent = status;
}

async function fetchBytes(url: string): Promise<Uint8Array> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`cannot load ${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

/** WebGPU when the browser has it and an adapter starts, else wasm; `?provider=` forces one. */
async function createSessions(m: Manifest): Promise<{ ort: typeof Ort; cts: Ort.InferenceSession; base: Ort.InferenceSession; provider: Provider }> {
  const forced = new URLSearchParams(location.search).get('provider');
  const order: Provider[] = forced === 'wasm' || forced === 'webgpu' ? [forced] : 'gpu' in navigator ? ['webgpu', 'wasm'] : ['wasm'];
  const [ctsBytes, baseBytes, weights] = await Promise.all([m.cts.file, m.baseline.file, m.weights.file].map((f) => fetchBytes(`models/${f}`)));
  const errors: string[] = (page.fallbacks = []);
  for (const provider of order) {
    try {
      if (provider === 'webgpu' && !(await (navigator as unknown as { gpu: { requestAdapter(): Promise<unknown> } }).gpu.requestAdapter())) {
        throw new Error('no WebGPU adapter');
      }
      const ort = await loadOrt(provider);
      const opts: Ort.InferenceSession.SessionOptions = {
        executionProviders: [provider], graphOptimizationLevel: 'all', externalData: [{ path: m.weights.file, data: weights! }],
      };
      const cts = await ort.InferenceSession.create(ctsBytes!, opts);
      const base = await ort.InferenceSession.create(baseBytes!, opts);
      return { ort, cts, base, provider };
    } catch (e) {
      errors.push(`${provider}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  throw new Error(`no execution provider could run the model (${errors.join('; ')})`);
}

/** The image's pixels at the model size: scaled to cover it and centre-cropped (an image of exactly that size is copied as is). */
async function pixelsOf(blob: Blob, h: number, w: number): Promise<ImageData> {
  const bmp = await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  const s = Math.min(bmp.width / w, bmp.height / h);
  const sw = w * s, sh = h * s;
  const c = document.createElement('canvas');
  c.width = w;
  c.height = h;
  const ctx = c.getContext('2d', { willReadFrequently: true })!;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(bmp, (bmp.width - sw) / 2, (bmp.height - sh) / 2, sw, sh, 0, 0, w, h);
  bmp.close();
  return ctx.getImageData(0, 0, w, h);
}

function rgbOf(img: ImageData): Uint8Array {
  const n = img.width * img.height, rgb = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) for (let k = 0; k < 3; k++) rgb[i * 3 + k] = img.data[i * 4 + k]!;
  return rgb;
}

async function runTimed(s: Ort.InferenceSession, feeds: Record<string, Ort.Tensor>): Promise<{ out: Ort.InferenceSession.ReturnType; ms: number }> {
  const out = await s.run(feeds); // the first run also warms up (kernel selection, buffers)
  const times: number[] = [];
  for (let i = 0; i < TIMED_RUNS; i++) {
    const t0 = performance.now();
    await s.run(feeds);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { out, ms: times[Math.floor(times.length / 2)]! };
}

function draw(id: string, img: ImageData): void {
  const c = $<HTMLCanvasElement>(id);
  c.width = img.width;
  c.height = img.height;
  c.getContext('2d')!.putImageData(img, 0, 0);
}

function paint(classMap: Uint8Array, palette: Manifest['palette'], w: number, h: number, under?: ImageData): ImageData {
  const out = new ImageData(w, h);
  for (let i = 0; i < w * h; i++) {
    const col = palette[classMap[i]!] ?? [0, 0, 0];
    for (let k = 0; k < 3; k++) out.data[i * 4 + k] = under ? Math.round(0.5 * under.data[i * 4 + k]! + 0.5 * col[k]!) : col[k]!;
    out.data[i * 4 + 3] = 255;
  }
  return out;
}

/** The input dimmed, shared superpatches tinted and outlined: where the ViT saw one token for four patches. */
function sharedView(img: ImageData, mask: Uint8Array, sp: number): ImageData {
  const { width: w, height: h } = img;
  const sw = w / sp, out = new ImageData(w, h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const i = y * w + x;
    const shared = mask[Math.floor(y / sp) * sw + Math.floor(x / sp)] === 1;
    const edge = shared && (x % sp === 0 || y % sp === 0 || x % sp === sp - 1 || y % sp === sp - 1);
    const tint: [number, number, number] = edge ? [255, 140, 0] : shared ? [255, 170, 40] : [255, 255, 255];
    const a = edge ? 1 : shared ? 0.45 : 0.35;
    for (let k = 0; k < 3; k++) out.data[i * 4 + k] = Math.round((1 - a) * img.data[i * 4 + k]! + a * tint[k]!);
    out.data[i * 4 + 3] = 255;
  }
  return out;
}

async function main(): Promise<void> {
  const m = (await (await fetch('models/manifest.json')).json()) as Manifest;
  const [h, w] = m.size;
  $('model').textContent = `${m.classes.length} classes, ${h}x${w}, ${m.cts.numShared} of ${(h / m.superpatch) * (w / m.superpatch)} superpatches shared, ${m.weights.dtype} weights`;
  $('tok-cts').textContent = String(m.cts.numTokens);
  $('tok-base').textContent = String(m.baseline.numTokens);
  $('legend').replaceChildren(...m.classes.map((c, i) => {
    const li = document.createElement('li');
    const sw = document.createElement('i');
    sw.style.background = `rgb(${m.palette[i]!.join(',')})`;
    li.append(sw, c);
    return li;
  }));
  const { ort, cts, base, provider } = await createSessions(m);
  page.provider = provider;
  document.body.dataset.provider = provider;
  $('provider').textContent = provider;
  if (page.fallbacks?.length) $('provider').title = `not used: ${page.fallbacks.join('; ')}`;
  setState('ready', 'ready');

  let busy = false;
  const segment = async (blob: Blob) => {
    if (busy) return;
    busy = true;
    try {
      setState('running', 'segmenting…');
      const img = await pixelsOf(blob, h, w);
      draw('view-input', img);
      const input = new ort.Tensor('uint8', rgbOf(img), [1, h, w, 3]);
      const a = await runTimed(cts, { input });
      const b = await runTimed(base, { input });
      const classMap = a.out.class_map!.data as Uint8Array, mask = a.out.mask_shared!.data as Uint8Array;
      const baseMap = b.out.class_map!.data as Uint8Array;
      draw('view-seg', paint(classMap, m.palette, w, h));
      draw('view-overlay', paint(classMap, m.palette, w, h, img));
      draw('view-shared', sharedView(img, mask, m.superpatch));
      draw('view-base', paint(baseMap, m.palette, w, h));
      const shared = mask.reduce((s, v) => s + v, 0);
      $('shared-caption').textContent = `shared tokens: ${shared} of ${mask.length} superpatches`;
      $('ms-cts').textContent = `${a.ms.toFixed(1)} ms`;
      $('ms-base').textContent = `${b.ms.toFixed(1)} ms`;
      $('speedup').textContent = `${(b.ms / a.ms).toFixed(2)}x`;
      Object.assign(page, { width: w, height: h, classMap, maskShared: mask, baselineClassMap: baseMap, msCts: a.ms, msBaseline: b.ms });
      setState('done', `done (${provider})`);
    } catch (e) {
      page.error = e instanceof Error ? e.message : String(e);
      setState('error', `error: ${page.error}`);
    } finally {
      busy = false;
    }
  };

  const sample = async () => segment(await (await fetch(m.sample)).blob());
  $('sample').addEventListener('click', () => void sample());
  $<HTMLInputElement>('file').addEventListener('change', (e) => {
    const f = (e.target as HTMLInputElement).files?.[0];
    if (f) void segment(f);
  });
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    const f = e.dataTransfer?.files[0];
    if (f) void segment(f);
  });
  await sample();
}

main().catch((e: unknown) => {
  page.error = e instanceof Error ? e.message : String(e);
  setState('error', `error: ${page.error}`);
});
