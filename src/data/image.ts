// Image IO through sharp (libvips): decode any common format to 8-bit RGB, read label PNGs as exact
// 8-bit values (no colour management, no palette expansion, no resampling), encode PNGs atomically.
import sharp from 'sharp';
import type { Metadata, Sharp } from 'sharp';
import { readFile } from 'node:fs/promises';
import { CtsError } from '../base/errors.js';
import { describeFsError, writeFileAtomic } from '../io/fs.node.js';
import type { LabelMap, RGBImage } from './types.js';

async function readBytes(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (e) {
    throw new CtsError(`cannot read ${what} ${path}: ${describeFsError(e)}`);
  }
}

/** Default pixel limit of decoded images (see DEFAULT_MAX_PIXELS in src/api/platform.ts). */
const MAX_PIXELS = 100_000_000;

/** Decodes an image file to 8-bit RGB (alpha dropped, grey expanded, EXIF orientation ignored as in cv2/torchvision). */
export async function readImage(path: string, maxPixels = MAX_PIXELS): Promise<RGBImage> {
  return decodeImage(await readBytes(path, 'image'), `image ${path}`, maxPixels);
}

/**
 * Decodes encoded image bytes (or a sharp pipeline) to 8-bit RGB. The declared size is checked
 * against `maxPixels` before any pixel is decoded; `name` (e.g. "image photo.png") prefixes errors.
 */
export async function decodeImage(input: Uint8Array | Sharp, name: string, maxPixels = MAX_PIXELS): Promise<RGBImage> {
  const img = input instanceof Uint8Array ? sharp(input, { failOn: 'error', limitInputPixels: false }) : input.clone();
  let meta: Metadata;
  try {
    meta = await img.metadata();
  } catch (e) {
    throw new CtsError(`cannot decode ${name}: ${describeSharpError(e)}`);
  }
  const w = meta.width ?? 0, h = meta.height ?? 0;
  if (w * h > maxPixels) throw new CtsError(`${name} is ${w}x${h} = ${w * h} pixels, over the limit of ${maxPixels} (raise it with the maxPixels option or --max-pixels)`);
  try {
    const { data, info } = await img.removeAlpha().toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`${info.channels} channels after conversion`);
    return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  } catch (e) {
    throw new CtsError(`cannot decode ${name}: ${describeSharpError(e)}`);
  }
}

function describeSharpError(e: unknown): string {
  const m = String((e as Error)?.message ?? e).split('\n')[0]!;
  return /unsupported image format/i.test(m) ? 'unsupported image format (expected PNG, JPEG, WebP, TIFF, GIF or AVIF)' : `${m} (expected a PNG/JPEG/WebP/TIFF image)`;
}

/**
 * Reads a label PNG as its stored 8-bit values: palette (P-mode) PNGs give their indices, greyscale
 * PNGs their grey level. RGB label images are rejected: their values would be colours, not ids.
 */
export async function readLabelPng(path: string): Promise<LabelMap> {
  const bytes = await readBytes(path, 'label');
  let meta: Awaited<ReturnType<ReturnType<typeof sharp>['metadata']>>;
  try {
    meta = await sharp(bytes).metadata();
  } catch (e) {
    throw new CtsError(`cannot decode label ${path}: ${(e as Error).message.split('\n')[0]} (expected an 8-bit PNG)`);
  }
  if (meta.format !== 'png') throw new CtsError(`label ${path} is ${meta.format ?? 'not an image'}, expected an 8-bit PNG (lossy formats corrupt class ids)`);
  const paletted = meta.isPalette === true;
  if (!paletted && (meta.channels ?? 1) > 2) throw new CtsError(`label ${path} has ${meta.channels} colour channels, expected a single-channel (greyscale or palette) PNG of class ids`);
  if ((meta.depth ?? 'uchar') !== 'uchar' && !paletted) throw new CtsError(`label ${path} has ${meta.depth} samples, expected 8-bit`);
  const data = paletted ? await paletteIndices(bytes, path) : (await sharp(bytes).extractChannel(0).raw().toBuffer());
  return { width: meta.width!, height: meta.height!, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

/**
 * Palette PNGs: libvips expands them to RGB, so the indices are read from the PNG's IDAT ourselves
 * (zlib inflate + PNG row filters); the format is small and fixed, no library exposes raw indices.
 */
async function paletteIndices(bytes: Buffer, path: string): Promise<Uint8Array> {
  const { inflateSync } = await import('node:zlib');
  let off = 8, width = 0, height = 0, bitDepth = 8, interlace = 0;
  const idat: Buffer[] = [];
  while (off + 8 <= bytes.length) {
    const len = bytes.readUInt32BE(off);
    const type = bytes.toString('latin1', off + 4, off + 8);
    const body = bytes.subarray(off + 8, off + 8 + len);
    if (type === 'IHDR') {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      bitDepth = body[8]!;
      interlace = body[12]!;
    } else if (type === 'IDAT') idat.push(body);
    else if (type === 'IEND') break;
    off += 12 + len;
  }
  if (interlace !== 0) throw new CtsError(`label ${path} is an interlaced palette PNG, which is not supported; re-save it without interlacing`);
  if (![1, 2, 4, 8].includes(bitDepth)) throw new CtsError(`label ${path}: palette bit depth ${bitDepth} is invalid`);
  let raw: Buffer;
  try {
    raw = inflateSync(Buffer.concat(idat));
  } catch {
    throw new CtsError(`label ${path} is corrupt (bad compressed image data)`);
  }
  const stride = Math.ceil((width * bitDepth) / 8);
  if (raw.length < height * (stride + 1)) throw new CtsError(`label ${path} is truncated`);
  const out = new Uint8Array(width * height);
  let prev = new Uint8Array(stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)]!;
    const line = Uint8Array.from(raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1)));
    for (let i = 0; i < stride; i++) {
      const a = i > 0 ? line[i - 1]! : 0, b = prev[i]!, c = i > 0 ? prev[i - 1]! : 0;
      let add = 0;
      if (f === 1) add = a;
      else if (f === 2) add = b;
      else if (f === 3) add = (a + b) >> 1;
      else if (f === 4) {
        const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
        add = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      line[i] = (line[i]! + add) & 255;
    }
    for (let x = 0; x < width; x++) {
      const bit = x * bitDepth;
      out[y * width + x] = (line[bit >> 3]! >> (8 - bitDepth - (bit & 7))) & ((1 << bitDepth) - 1);
    }
    prev = line;
  }
  return out;
}

/** Encodes RGB (3 channels) or grey (1 channel) pixels as PNG, written atomically. */
export async function writePng(path: string, width: number, height: number, channels: 1 | 3 | 4, data: Uint8Array): Promise<void> {
  // a single channel must stay a greyscale PNG: label ids are read back as stored
  const img = sharp(Buffer.from(data.buffer, data.byteOffset, data.byteLength), { raw: { width, height, channels } });
  const png = await (channels === 1 ? img.toColourspace('b-w') : img).png().toBuffer();
  await writeFileAtomic(path, png);
}

/** Encodes an RGB image to PNG bytes. */
export async function encodePng(img: RGBImage): Promise<Uint8Array> {
  return sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength), { raw: { width: img.width, height: img.height, channels: 3 } }).png().toBuffer();
}
