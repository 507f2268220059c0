// The cts-seg browser demo, a client of the library's browser entry (`cts-seg/web`, aliased to
// src/web/index.ts in vite.config.ts): the shipped CTS export and the same weights without sharing
// are loaded with Segmenter.load and run through Segmenter.segment; the page only draws what comes
// back. Query parameters: ?provider=wasm|webgpu forces a provider, ?worker=1 runs the models in a
// Web Worker, ?model=URL (&data=URL for its external data) opens another export instead.
// Plain DOM, no framework.
import { Segmenter, env, toImageData, type LoadOptions, type ModelInfo, type Provider, type SegmentResult } from 'cts-seg/web';
// Vite emits the binaries of the two onnxruntime-web builds as assets of the page; the library is
// told where they are (nothing is fetched from outside at build or run time)
import wasmUrl from 'onnxruntime-web/ort-wasm-simd-threaded.wasm?url';
import webgpuWasmUrl from 'onnxruntime-web/ort-wasm-simd-threaded.asyncify.wasm?url';

env.wasmPaths = { wasm: wasmUrl, webgpu: webgpuWasmUrl };

/** models/manifest.json, written by `npm run web:model` next to the two graphs. */
interface Manifest {
  cts: { file: string };
  baseline: { file: string };
  /** ONNX external data that both graphs refer to (their weights, stored once). */
  weights: { file: string; dtype: 'float32' | 'float16' };
}

/** What the page exposes for tests and scripts (window.ctsSeg). */
interface PageState {
  state: 'loading' | 'ready' | 'running' | 'done' | 'error';
  provider?: Provider;
  /** Whether the models run in a Web Worker. */
  worker: boolean;
  /** The model shown (a URL or a file name). */
  model?: string;
  /** Why preferred providers were not used (e.g. no WebGPU adapter). */
  fallbacks: string[];
  error?: string;
  width?: number;
  height?: number;
  /** CTS class map and shared-pixel mask [height x width] of the last image. */
  classMap?: Uint8Array;
  maskShared?: Uint8Array;
  /** Class map of the model without sharing (the shipped pair only). */
  baselineClassMap?: Uint8Array;
  /** Median inference time per image, in ms. */
  msCts?: number;
  msBaseline?: number;
}

declare global {
  interface Window {
    ctsSeg: PageState;
  }
}

/** A model to show, with the same weights without sharing when there is one to compare with. */
interface Models {
  name: string;
  cts: Segmenter;
  baseline?: Segmenter;
  note?: string;
}

const TIMED_RUNS = 5;
const SAMPLE = 'sample.png';
const params = new URLSearchParams(location.search);
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const page: PageState = (window.ctsSeg = { state: 'loading', worker: params.get('worker') === '1', fallbacks: [] });

function setState(s: PageState['state'], status: string): void {
  page.state = s;
  document.body.dataset.state = s;
  $('status').textContent = status;
}

function fail(e: unknown): void {
  page.error = e instanceof Error ? e.message : String(e);
  setState('error', `error: ${page.error}`);
}

/** Load options of every model: WebGPU first unless `?provider=` forces one (the library falls back to wasm). */
function loadOptions(externalData?: LoadOptions['externalData']): LoadOptions {
  const forced = params.get('provider');
  const provider: Provider = forced === 'wasm' || forced === 'webgpu' ? forced : 'webgpu';
  return { provider, worker: page.worker, onFallback: (m) => page.fallbacks.push(m), ...(externalData ? { externalData } : {}) };
}

/** The last path segment of a URL: the name an ONNX model uses for external data beside it. */
function baseName(url: string): string {
  return new URL(url, location.href).pathname.split('/').pop() || url;
}

/** The shipped pair (CTS and no sharing, one weights file), named by models/manifest.json. */
async function shippedModels(): Promise<Models> {
  const r = await fetch('models/manifest.json');
  if (!r.ok) throw new Error(`cannot load models/manifest.json: HTTP ${r.status}`);
  const m = (await r.json()) as Manifest;
  const externalData = [{ path: m.weights.file, data: `models/${m.weights.file}` }];
  const cts = await Segmenter.load(`models/${m.cts.file}`, loadOptions(externalData));
  const baseline = await Segmenter.load(`models/${m.baseline.file}`, loadOptions(externalData));
  return { name: `models/${m.cts.file}`, cts, baseline, note: `${m.weights.dtype} weights` };
}

/** `?model=URL` (and `&data=URL` for its external data). */
async function urlModel(url: string): Promise<Models> {
  const data = params.get('data');
  const cts = await Segmenter.load(url, loadOptions(data ? [{ path: baseName(data), data }] : undefined));
  return { name: url, cts };
}

/** Files from the picker: one model (.onnx or .safetensors), the others its external data (by file name). */
async function fileModel(files: File[]): Promise<Models> {
  const model = files.find((f) => /\.(onnx|safetensors)$/i.test(f.name)) ?? files[0]!;
  const rest = files.filter((f) => f !== model);
  const externalData = rest.length ? await Promise.all(rest.map(async (f) => ({ path: f.name, data: new Uint8Array(await f.arrayBuffer()) }))) : undefined;
  return { name: model.name, cts: await Segmenter.load(model, loadOptions(externalData)) };
}

function draw(id: string, img: ImageData): void {
  const c = $<HTMLCanvasElement>(id);
  c.width = img.width;
  c.height = img.height;
  c.getContext('2d')!.putImageData(img, 0, 0);
}

function clear(id: string): void {
  const c = $<HTMLCanvasElement>(id);
  c.getContext('2d')!.clearRect(0, 0, c.width, c.height);
}

/** The input as the browser shows it (display only: the Segmenter reads the pixels itself). */
async function drawInput(blob: Blob): Promise<void> {
  const bmp = await createImageBitmap(blob);
  const c = $<HTMLCanvasElement>('view-input');
  c.width = bmp.width;
  c.height = bmp.height;
  c.getContext('2d')!.drawImage(bmp, 0, 0);
  bmp.close();
}

/** Segments once with pictures (this also warms the session up), then times TIMED_RUNS more calls: median inference ms. */
async function timedSegment(seg: Segmenter, blob: Blob): Promise<{ r: SegmentResult; ms: number }> {
  const r = await seg.segment(blob, { pictures: true });
  const times: number[] = [];
  for (let i = 0; i < TIMED_RUNS; i++) times.push((await seg.segment(blob)).timings.inference);
  times.sort((a, b) => a - b);
  return { r, ms: times[Math.floor(times.length / 2)]! };
}

function describeModel(info: ModelInfo, note?: string): string {
  const [h, w] = info.window;
  const sharing = info.numShared ? `${info.numShared} superpatches shared per window` : 'no sharing';
  return [`${info.classes.length} classes`, `${h}x${w} window`, sharing, ...(note ? [note] : [])].join(', ');
}

function showModel(m: Models): void {
  const { info } = m.cts;
  page.model = m.name;
  page.provider = info.provider;
  document.body.dataset.provider = info.provider;
  $('provider').textContent = page.worker ? `${info.provider} (worker)` : info.provider;
  $('provider').title = page.fallbacks.length ? `not used: ${page.fallbacks.join('; ')}` : '';
  $('model').textContent = describeModel(info, m.note);
  $('model').title = m.name;
  $('legend').replaceChildren(...info.classes.map((c, i) => {
    const li = document.createElement('li');
    const sw = document.createElement('i');
    sw.style.background = `rgb(${(info.palette[i] ?? [0, 0, 0]).join(',')})`;
    li.append(sw, c);
    return li;
  }));
  for (const id of ['tok-cts', 'tok-base', 'ms-cts', 'ms-base', 'speedup']) $(id).textContent = '–';
  for (const id of ['view-seg', 'view-overlay', 'view-shared', 'view-base']) clear(id);
}

function showResult(m: Models, a: { r: SegmentResult; ms: number }, b?: { r: SegmentResult; ms: number }): void {
  const { r } = a;
  const pics = r.pictures!;
  draw('view-seg', toImageData(pics.mask));
  draw('view-overlay', toImageData(pics.overlay));
  draw('view-shared', toImageData(pics.shared));
  if (b) draw('view-base', toImageData(b.r.pictures!.mask));
  const superpatches = r.tokens.patches / 4;
  const windows = r.tokens.windows > 1 ? ` in each of ${r.tokens.windows} windows` : '';
  $('shared-caption').textContent = `shared tokens: ${r.tokens.shared} of ${superpatches} superpatches${windows}`;
  $('tok-cts').textContent = String(r.tokens.tokens);
  $('ms-cts').textContent = `${a.ms.toFixed(1)} ms`;
  $('tok-base').textContent = b ? String(b.r.tokens.tokens) : '–';
  $('ms-base').textContent = b ? `${b.ms.toFixed(1)} ms` : '–';
  $('speedup').textContent = b ? `${(b.ms / a.ms).toFixed(2)}x` : '–';
  Object.assign(page, {
    width: r.width, height: r.height, classMap: r.classMap, maskShared: r.maskShared, msCts: a.ms,
    baselineClassMap: b?.r.classMap, msBaseline: b?.ms,
  });
  setState('done', `done (${m.cts.info.provider}${page.worker ? ', worker' : ''})`);
}

let models: Models | undefined;
let lastImage: Blob | undefined;
let busy = false;

/** Runs one step at a time (loading a model, segmenting an image); clicks during a step are ignored. */
async function exclusive(step: () => Promise<void>): Promise<void> {
  if (busy) return;
  busy = true;
  try {
    await step();
  } catch (e) {
    fail(e);
  } finally {
    busy = false;
  }
}

async function segment(blob: Blob): Promise<void> {
  if (!models) return;
  lastImage = blob;
  setState('running', 'segmenting…');
  await drawInput(blob);
  const a = await timedSegment(models.cts, blob);
  const b = models.baseline ? await timedSegment(models.baseline, blob) : undefined;
  showResult(models, a, b);
}

async function open(load: () => Promise<Models>): Promise<void> {
  setState('loading', 'loading the model…');
  const old = models;
  models = undefined;
  await Promise.all([old?.cts.dispose(), old?.baseline?.dispose()]);
  page.fallbacks = [];
  models = await load();
  showModel(models);
  setState('ready', 'ready');
}

async function sampleBlob(): Promise<Blob> {
  const r = await fetch(SAMPLE);
  if (!r.ok) throw new Error(`cannot load ${SAMPLE}: HTTP ${r.status}`);
  return r.blob();
}

function wire(): void {
  $('sample').addEventListener('click', () => void exclusive(async () => segment(await sampleBlob())));
  $<HTMLInputElement>('file').addEventListener('change', (e) => {
    const f = (e.target as HTMLInputElement).files?.[0];
    if (f) void exclusive(() => segment(f));
  });
  $<HTMLInputElement>('model-file').addEventListener('change', (e) => {
    const files = [...((e.target as HTMLInputElement).files ?? [])];
    if (files.length) void exclusive(async () => {
      await open(() => fileModel(files));
      await segment(lastImage ?? (await sampleBlob()));
    });
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
    if (f) void exclusive(() => segment(f));
  });
}

wire();
void exclusive(async () => {
  const url = params.get('model');
  await open(url ? () => urlModel(url) : shippedModels);
  await segment(await sampleBlob());
});
