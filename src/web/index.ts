// The browser entry point of cts-seg (`import { Segmenter } from 'cts-seg/web'`): registers
// onnxruntime-web (src/web/ort.ts) and the browser platform (fetch, createImageBitmap,
// OffscreenCanvas), then exposes the same Segmenter API as the Node entry, plus `env` and helpers to
// put results on a canvas. `Segmenter.load(source, { worker: true })` runs the model in a Web Worker.
// Nothing here or below imports a Node module.
import './ort.js';
import './platform.js';
import { Segmenter as InThreadSegmenter } from '../api/segmenter.js';
import type { LoadOptions } from '../api/types.js';
import type { ModelCheckpoint } from '../cts/checkpoint.js';
import type { RGBImage } from '../data/types.js';
import type { WebModelSource } from './platform.js';
import { WorkerSegmenter } from './worker_client.js';
import { CtsError } from '../base/errors.js';

export type * from '../api/types.js';
export { DEFAULT_WINDOW_BATCH } from '../api/segmenter.js';
export { DEFAULT_MAX_PIXELS, type RawImage } from '../api/platform.js';
export { PLATFORM_PROVIDERS, parseProvider, type Provider, type Platform } from '../runtime/providers.js';
export type { PolicyMethod } from '../cts/spec.js';
export type { RGBImage } from '../data/types.js';
export { colorize, overlay, sharedView } from '../eval/visualize.js';
export { env, type WebEnv, type WasmFiles } from './ort.js';
export type { WebImageSource, WebModelSource } from './platform.js';
export { InThreadSegmenter, WorkerSegmenter, CtsError };

/** A loaded model: in the page's thread, or in a Web Worker (`worker: true`); the same methods either way. */
export type Segmenter = InThreadSegmenter | WorkerSegmenter;

/** What `Segmenter.load` accepts: a URL, Blob/File, bytes, or an already parsed checkpoint. */
export type ModelSource = WebModelSource | ModelCheckpoint;

/** Loading a model in the browser (the Node entry's Segmenter.load, with `worker`). */
export interface SegmenterLoader {
  /** Loads the model into a Web Worker; inference never blocks the page. */
  load(source: ModelSource, options: LoadOptions & { worker: true }): Promise<WorkerSegmenter>;
  /** Loads the model in this thread. */
  load(source: ModelSource, options?: LoadOptions & { worker?: false }): Promise<InThreadSegmenter>;
  /**
   * Loads a cts-seg checkpoint (.safetensors) or export (.onnx) from a URL (relative to the page), a
   * Blob or File, or bytes; the format is recognised from the bytes. External data given as a URL is
   * downloaded the same way.
   */
  load(source: ModelSource, options?: LoadOptions): Promise<Segmenter>;
}

/** Loads models: `await Segmenter.load('models/model.onnx', { provider: 'webgpu', worker: true })`. */
export const Segmenter: SegmenterLoader = {
  load(source: ModelSource, options: LoadOptions = {}): Promise<never> {
    // the core refuses `worker` (it has no worker in Node); here it is answered before the core sees it
    return (options.worker ? WorkerSegmenter.load(source, options) : InThreadSegmenter.load(source, options)) as Promise<never>;
  },
};

/** An RGB picture (a result's `pictures`, or any RGBImage) as ImageData, ready for `putImageData`. */
export function toImageData(rgb: RGBImage): ImageData {
  const { width, height, data } = rgb;
  const n = width * height;
  if (data.length !== n * 3) throw new CtsError(`RGB picture has ${data.length} bytes, expected ${width}x${height}x3 = ${n * 3}`);
  const out = new ImageData(width, height);
  const px = out.data;
  for (let p = 0; p < n; p++) {
    px[4 * p] = data[3 * p]!;
    px[4 * p + 1] = data[3 * p + 1]!;
    px[4 * p + 2] = data[3 * p + 2]!;
    px[4 * p + 3] = 255;
  }
  return out;
}
