// The browser side of the Segmenter API: models from URLs (fetched), Blobs/Files or bytes; images
// from anything a canvas can draw (elements, bitmaps, canvases, video frames), ImageData, Blobs and
// URLs. Pixels are read at the image's natural size through an OffscreenCanvas, so the model sees
// the same 8-bit RGB values a decoder in Node would give (no colour-space conversion, no
// premultiplied alpha where the browser lets us choose).
import { CtsError } from '../base/errors.js';
import type { RGBImage } from '../data/types.js';
import { checkPixels, rawToRgb, registerApiPlatform, type ApiPlatform } from '../api/platform.js';

/** A model as the browser build accepts it: a URL (relative to the page), a Blob or File, or bytes. */
export type WebModelSource = string | URL | Blob | ArrayBuffer | Uint8Array;

/** An image as the browser build accepts it (RawImage pixels are accepted too, see the core). */
export type WebImageSource =
  | HTMLImageElement | HTMLVideoElement | HTMLCanvasElement | OffscreenCanvas | ImageBitmap | ImageData
  | VideoFrame | Blob | string | URL | ArrayBuffer | Uint8Array;

declare module '../api/types.js' {
  /** The browser: see WebImageSource. */
  interface ImageInputs {
    web: WebImageSource;
  }
  /** The browser: see WebModelSource. */
  interface ModelSources {
    web: WebModelSource;
  }
}

const BITMAP_OPTIONS: ImageBitmapOptions = { colorSpaceConversion: 'none', premultiplyAlpha: 'none' };

/** Whether `v` is an instance of the global class `name` (absent classes, e.g. HTMLImageElement in a worker, never match). */
function isA<T>(v: unknown, name: string): v is T {
  const C = (globalThis as Record<string, unknown>)[name];
  return typeof C === 'function' && v instanceof (C as abstract new (...a: never[]) => unknown);
}

/** A URL the user gave, made absolute against the page (or worker) location. */
export function absoluteUrl(u: string | URL): string {
  const base = (globalThis as { location?: { href: string } }).location?.href;
  try {
    return new URL(u, base).href;
  } catch {
    throw new CtsError(`${String(u)} is not a valid URL`);
  }
}

/** Downloads a URL the user named; one line naming the URL when it cannot be fetched. */
async function download(url: string): Promise<Blob> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new CtsError(`cannot download ${url}: ${(e as Error).message}`);
  }
  if (!res.ok) throw new CtsError(`cannot download ${url}: HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`);
  return res.blob();
}

function bytesOf(v: unknown): Uint8Array | undefined {
  if (v instanceof Uint8Array) return v;
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  return undefined;
}

function blobName(b: Blob, what: string): string {
  return isA<File>(b, 'File') && b.name ? b.name : `the ${what} Blob`;
}

// One canvas for every read-back, kept between calls: a page that segments frame after frame would
// otherwise create a canvas and a 2D context per image.
let reader: OffscreenCanvasRenderingContext2D | undefined;

/** RGB of a drawable at the given size: the pixel limit first, then one draw and one read-back. */
function drawToRgb(src: CanvasImageSource | VideoFrame, width: number, height: number, maxPixels: number, name: string): RGBImage {
  checkPixels(width, height, maxPixels, name);
  if (typeof OffscreenCanvas === 'undefined') throw new CtsError(`${name}: this browser has no OffscreenCanvas to read pixels with`);
  if (!reader) reader = new OffscreenCanvas(width, height).getContext('2d', { willReadFrequently: true }) ?? undefined;
  const ctx = reader;
  if (!ctx) throw new CtsError(`${name}: cannot create a 2D canvas to read its pixels`);
  // a new size resets the canvas; the same size is cleared, so a transparent image never shows the last one
  if (ctx.canvas.width !== width || ctx.canvas.height !== height) [ctx.canvas.width, ctx.canvas.height] = [width, height];
  else ctx.clearRect(0, 0, width, height);
  ctx.drawImage(src as CanvasImageSource, 0, 0, width, height);
  const rgba = ctx.getImageData(0, 0, width, height).data;
  return rawToRgb({ data: rgba, width, height, channels: 4 }, maxPixels, name);
}

async function bitmapToRgb(source: ImageBitmapSource, maxPixels: number, name: string): Promise<RGBImage> {
  let bmp: ImageBitmap;
  try {
    bmp = await createImageBitmap(source, BITMAP_OPTIONS);
  } catch (e) {
    throw new CtsError(`${name} cannot be decoded as an image (${(e as Error).message})`);
  }
  try {
    return drawToRgb(bmp, bmp.width, bmp.height, maxPixels, name);
  } finally {
    bmp.close();
  }
}

/** The browser platform. */
export const webPlatform: ApiPlatform = {
  async readModel(source) {
    const bytes = bytesOf(source);
    if (bytes) return { bytes, name: 'the model bytes' };
    if (isA<Blob>(source, 'Blob')) return { bytes: new Uint8Array(await source.arrayBuffer()), name: blobName(source, 'model') };
    if (typeof source === 'string' || source instanceof URL) {
      const url = absoluteUrl(source);
      return { bytes: new Uint8Array(await (await download(url)).arrayBuffer()), name: url };
    }
    throw new CtsError(`a model source must be a URL, a Blob or File, or bytes, got ${source === null ? 'null' : typeof source}`);
  },

  async decodeImage(image, maxPixels) {
    if (isA<ImageData>(image, 'ImageData')) {
      return rawToRgb({ data: image.data, width: image.width, height: image.height, channels: 4 }, maxPixels, 'the ImageData');
    }
    if (typeof image === 'string' || image instanceof URL) {
      const url = absoluteUrl(image);
      return bitmapToRgb(await download(url), maxPixels, `image ${url}`);
    }
    if (isA<Blob>(image, 'Blob')) return bitmapToRgb(image, maxPixels, blobName(image, 'image'));
    const bytes = bytesOf(image);
    if (bytes) return bitmapToRgb(new Blob([bytes as Uint8Array<ArrayBuffer>]), maxPixels, 'the image bytes');
    if (isA<HTMLImageElement>(image, 'HTMLImageElement')) {
      const name = `image ${image.currentSrc || image.src || 'element'}`;
      if (!image.complete) await image.decode().catch(() => undefined);
      if (!image.naturalWidth) throw new CtsError(`${name} has not loaded (or failed to load)`);
      checkPixels(image.naturalWidth, image.naturalHeight, maxPixels, name);
      // through a bitmap, so an embedded colour profile is not applied (as for Blobs)
      return bitmapToRgb(image, maxPixels, name);
    }
    if (isA<HTMLVideoElement>(image, 'HTMLVideoElement')) {
      if (!image.videoWidth) throw new CtsError('the video element has no frame yet (wait for loadeddata)');
      return drawToRgb(image, image.videoWidth, image.videoHeight, maxPixels, 'the video element');
    }
    if (isA<VideoFrame>(image, 'VideoFrame')) return drawToRgb(image, image.displayWidth, image.displayHeight, maxPixels, 'the VideoFrame');
    if (isA<ImageBitmap>(image, 'ImageBitmap')) return drawToRgb(image, image.width, image.height, maxPixels, 'the ImageBitmap');
    if (isA<HTMLCanvasElement>(image, 'HTMLCanvasElement') || isA<OffscreenCanvas>(image, 'OffscreenCanvas')) {
      return drawToRgb(image, image.width, image.height, maxPixels, 'the canvas');
    }
    return undefined;
  },
};

registerApiPlatform(webPlatform);
