// What the Segmenter API needs from its platform, registered by the entry point: `src/node/platform.ts`
// (fs, fetch, sharp) or `src/web/platform.ts` (fetch, createImageBitmap, OffscreenCanvas). The API
// itself reads no file and decodes no image format.
import { CtsError } from '../base/errors.js';
import type { RGBImage } from '../data/types.js';
import { checkPixels } from '../base/pixels.js';

/** Raw pixels, row-major, interleaved: 1 (grey), 3 (RGB) or 4 (RGBA) channels of 8 bits. */
export interface RawImage {
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
  channels: 1 | 3 | 4;
}

/** A platform's model reading and image decoding. */
export interface ApiPlatform {
  /**
   * The bytes of a model source (a path, URL, Blob or bytes; what is accepted is the platform's) and a
   * name for messages. Rejects with a CtsError naming the source when it cannot be read.
   */
  readModel(source: unknown): Promise<{ bytes: Uint8Array; name: string }>;
  /**
   * Decodes an image the platform knows (a path, Buffer or sharp instance in Node; an image element,
   * bitmap, canvas, Blob or video frame in a browser) to RGB, refusing more than `maxPixels` pixels
   * before decoding them. Returns undefined for a value it does not recognise.
   */
  decodeImage(image: unknown, maxPixels: number): Promise<RGBImage | undefined>;
}

let current: ApiPlatform | undefined;

/** Registers the platform (done by the `cts-seg` and `cts-seg/web` entry points on import). */
export function registerApiPlatform(p: ApiPlatform): void {
  current = p;
}

/** The registered platform. */
export function apiPlatform(): ApiPlatform {
  if (!current) throw new CtsError("no platform is registered: import Segmenter from 'cts-seg' (Node) or 'cts-seg/web' (browser)");
  return current;
}

export { checkPixels, DEFAULT_MAX_PIXELS } from '../base/pixels.js';

/** Whether a value is a RawImage. */
export function isRawImage(v: unknown): v is RawImage {
  const r = v as RawImage;
  return typeof v === 'object' && v !== null && (r.data instanceof Uint8Array || r.data instanceof Uint8ClampedArray) &&
    typeof r.width === 'number' && typeof r.height === 'number' && typeof r.channels === 'number';
}

/** RGB of raw pixels (grey expanded, alpha dropped), checked against their size and the pixel limit. */
export function rawToRgb(img: RawImage, maxPixels: number, name = 'image'): RGBImage {
  const { width, height, channels, data } = img;
  if (![1, 3, 4].includes(channels)) throw new CtsError(`${name} has ${channels} channels, expected 1, 3 or 4`);
  checkPixels(width, height, maxPixels, name);
  const n = width * height;
  if (data.length !== n * channels) throw new CtsError(`${name} has ${data.length} bytes, expected ${width}x${height}x${channels} = ${n * channels}`);
  if (channels === 3) return { width, height, data: data instanceof Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, data.length) };
  const out = new Uint8Array(n * 3);
  for (let p = 0; p < n; p++) {
    for (let c = 0; c < 3; c++) out[3 * p + c] = data[channels === 1 ? p : 4 * p + c]!;
  }
  return { width, height, data: out };
}
