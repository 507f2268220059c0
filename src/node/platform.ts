// The Node side of the Segmenter API: models from paths, file: and http(s) URLs, bytes or zoo names
// (pulled into the cache on first use, see src/zoo); images
// from paths, Buffers or sharp pipelines, decoded by sharp with the pixel limit checked first.
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Sharp } from 'sharp';
import { CtsError } from '../base/errors.js';
import { describeFsError } from '../io/fs.node.js';
import { decodeImage } from '../data/image.js';
import { registerApiPlatform, type ApiPlatform } from '../api/platform.js';
import { setDefaultGraphMemoryLimit } from '../cts/memory.js';
import { resolveModel } from '../zoo/pull.node.js';
import { findModel } from '../zoo/registry.js';

function isSharp(v: unknown): v is Sharp {
  return typeof v === 'object' && v !== null && typeof (v as Sharp).metadata === 'function' && typeof (v as Sharp).raw === 'function';
}

function bytesOf(v: unknown): Uint8Array | undefined {
  if (v instanceof Uint8Array) return v;
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  return undefined;
}

/** Downloads a URL the user named; one line naming the URL when it cannot be fetched. */
async function download(url: string): Promise<Uint8Array> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    throw new CtsError(`cannot download ${url}: ${cause?.code ?? cause?.message ?? (e as Error).message}`);
  }
  if (!res.ok) throw new CtsError(`cannot download ${url}: HTTP ${res.status} ${res.statusText}`);
  return new Uint8Array(await res.arrayBuffer());
}

async function readPath(path: string, what: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (e) {
    throw new CtsError(`cannot read ${what} ${path}: ${describeFsError(e)}`);
  }
}

declare module '../api/types.js' {
  /** Node: a file path or file: URL, encoded bytes (PNG, JPEG, WebP, TIFF, GIF, AVIF) or a sharp pipeline. */
  interface ImageInputs {
    node: string | URL | Uint8Array | ArrayBuffer | Sharp;
  }
  /** Node: a path, a file: or http(s): URL. */
  interface ModelSources {
    node: string | URL;
  }
}

/** The Node platform. */
export const nodePlatform: ApiPlatform = {
  async readModel(source) {
    const bytes = bytesOf(source);
    if (bytes) return { bytes, name: 'the model bytes' };
    const s = source instanceof URL ? source.href : source;
    if (typeof s !== 'string') throw new CtsError(`a model source must be a path, a URL or bytes, got ${source === null ? 'null' : typeof source}`);
    if (/^https?:\/\//i.test(s)) return { bytes: await download(s), name: s };
    let path = s.startsWith('file:') ? fileURLToPath(s) : s;
    // a zoo name (cts-seg models) that is not also a file here: pulled into the cache on first use
    if (!existsSync(path) && findModel(path)) path = await resolveModel(path);
    return { bytes: await readPath(path, 'model'), name: path };
  },
  async decodeImage(image, maxPixels) {
    if (typeof image === 'string' || image instanceof URL) {
      const path = image instanceof URL || image.startsWith('file:') ? fileURLToPath(image) : image;
      return decodeImage(await readPath(path, 'image'), `image ${path}`, maxPixels);
    }
    const bytes = bytesOf(image);
    if (bytes) return decodeImage(bytes, 'the image bytes', maxPixels);
    if (isSharp(image)) return decodeImage(image, 'the sharp image', maxPixels);
    return undefined;
  },
};

registerApiPlatform(nodePlatform);
setDefaultGraphMemoryLimit(totalmem());
