// The page's side of `Segmenter.load(source, { worker: true })`: a Segmenter whose model runs in a
// Web Worker (src/web/worker.ts), so inference never blocks the page. Images are decoded to RGB here,
// on the page, because elements and canvases cannot cross to a worker; their pixels are transferred.
import { CtsError } from '../base/errors.js';
import { DEFAULT_MAX_PIXELS, isRawImage, type RawImage } from '../api/platform.js';
import type { LoadOptions, ModelInfo, SegmentOptions, SegmentResult, ModelSource } from '../api/types.js';
import type { ModelCheckpoint } from '../cts/checkpoint.js';
import { env, type WebEnv } from './ort.js';
import { absoluteUrl, webPlatform, type WebImageSource, type WebModelSource } from './platform.js';
import type { WorkerReply, WorkerRequest } from './protocol.js';

type Pending = { resolve(v: unknown): void; reject(e: Error): void };
type Request = WorkerRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

/** URLs made absolute against the page: the worker resolves relative URLs against its own script. */
function portable(source: ModelSource): ModelSource {
  return typeof source === 'string' || source instanceof URL ? absoluteUrl(source) : source;
}

function portableEnv(): Pick<WebEnv, 'wasmPaths' | 'numThreads'> {
  const p = env.wasmPaths;
  const wasmPaths = typeof p === 'string' ? absoluteUrl(p)
    : p ? { ...(p.wasm ? { wasm: absoluteUrl(p.wasm) } : {}), ...(p.webgpu ? { webgpu: absoluteUrl(p.webgpu) } : {}) } : undefined;
  return { wasmPaths, numThreads: env.numThreads };
}

function startWorker(): Worker {
  // the literal `new Worker(new URL('./worker.js', import.meta.url), ...)` is what bundlers (Vite, webpack) recognise
  return env.workerUrl !== undefined ? new Worker(env.workerUrl, { type: 'module' }) : new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
}

/** A Segmenter running in a Web Worker: the same info, segment, segmentBatch and dispose as in-thread. */
export class WorkerSegmenter {
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private failure: Error | undefined;
  /** What the model is (set once loaded). */
  info!: ModelInfo;

  private constructor(private readonly worker: Worker, private readonly maxPixels: number, onFallback: (message: string) => void) {
    worker.onmessage = (e: MessageEvent<WorkerReply>) => {
      const m = e.data;
      if ('op' in m) return onFallback(m.message);
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (!p) return;
      if (m.ok) p.resolve(m.value);
      else p.reject(m.name === 'CtsError' ? new CtsError(m.message) : Object.assign(new Error(m.message), { name: m.name }));
    };
    // a script that fails to load or throws at the top level never answers: fail every waiting call
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      this.fail(new CtsError(`the cts-seg worker failed: ${e.message || 'its script could not be loaded (see env.workerUrl)'}`));
    };
    worker.onmessageerror = () => this.fail(new CtsError('the cts-seg worker sent a message that could not be read'));
  }

  /** Starts a worker and loads the model in it (see Segmenter.load; `worker` is implied). */
  static async load(source: WebModelSource | ModelCheckpoint, o: LoadOptions = {}): Promise<WorkerSegmenter> {
    const { worker: _, onFallback, ...options } = o;
    const s = new WorkerSegmenter(startWorker(), o.maxPixels ?? DEFAULT_MAX_PIXELS, onFallback ?? ((m) => console.warn(`cts-seg: ${m}`)));
    const externalData = options.externalData?.map((e) => ({ path: e.path, data: typeof e.data === 'string' ? absoluteUrl(e.data) : e.data }));
    try {
      s.info = (await s.call({ op: 'load', source: portable(source), options: { ...options, ...(externalData ? { externalData } : {}) }, env: portableEnv() })) as ModelInfo;
    } catch (e) {
      s.worker.terminate();
      throw e;
    }
    return s;
  }

  /** Segments one image in the worker; the image is decoded to RGB here first. */
  async segment(image: WebImageSource | RawImage, o: SegmentOptions = {}): Promise<SegmentResult> {
    const t0 = performance.now();
    const raw = await this.toRaw(image);
    const decode = performance.now() - t0;
    return addDecode((await this.call({ op: 'segment', image: raw.image, options: o }, raw.transfer)) as SegmentResult, decode);
  }

  /** Segments several images in the worker, one after another (each at its own size). */
  async segmentBatch(images: readonly (WebImageSource | RawImage)[], o: SegmentOptions = {}): Promise<SegmentResult[]> {
    const t0 = performance.now();
    const raws = [];
    for (const image of images) raws.push(await this.toRaw(image));
    const decode = (performance.now() - t0) / Math.max(1, images.length);
    const rs = (await this.call({ op: 'segmentBatch', images: raws.map((r) => r.image), options: o }, raws.flatMap((r) => r.transfer))) as SegmentResult[];
    return rs.map((r) => addDecode(r, decode));
  }

  /** Frees the model and ends the worker; the Segmenter cannot be used afterwards. */
  async dispose(): Promise<void> {
    try {
      if (!this.failure) await this.call({ op: 'dispose' });
    } finally {
      this.worker.terminate();
      this.fail(new CtsError('this Segmenter has been disposed'));
      this.failure = new CtsError('this Segmenter has been disposed');
    }
  }

  /** Raw pixels to post: the caller's own RawImage is copied (transferring it would empty their buffer), a decoded one moved. */
  private async toRaw(image: unknown): Promise<{ image: RawImage; transfer: Transferable[] }> {
    if (isRawImage(image)) return { image, transfer: [] };
    const img = await webPlatform.decodeImage(image, this.maxPixels);
    if (!img) throw new CtsError(`unsupported image input (${describe(image)}): pass an image element, bitmap, canvas, ImageData, VideoFrame, Blob, URL, bytes or {data, width, height, channels}`);
    return { image: { data: img.data, width: img.width, height: img.height, channels: 3 }, transfer: [img.data.buffer as ArrayBuffer] };
  }

  private call(req: Request, transfer: Transferable[] = []): Promise<unknown> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...req, id }, transfer);
    });
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}

/** A result with the page's decoding time added (the worker only saw raw pixels). */
function addDecode(r: SegmentResult, decode: number): SegmentResult {
  r.timings = { ...r.timings, decode: r.timings.decode + decode, total: r.timings.total + decode };
  return r;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v !== 'object') return typeof v;
  return (v as object).constructor?.name ?? 'object';
}
