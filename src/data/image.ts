// Image IO through sharp (libvips): decode any common format to 8-bit RGB, read label PNGs as exact
// 8-bit values (no colour management, no palette expansion, no resampling), encode PNGs atomically.
import sharp from 'sharp';
import type { Metadata, Sharp } from 'sharp';
import { readFile } from 'node:fs/promises';
import { inflateSync } from 'node:zlib';
import { CtsError } from '../base/errors.js';
import { checkPixels, DEFAULT_MAX_PIXELS } from '../base/pixels.js';
import { describeFsError, writeFileAtomic } from '../io/fs.node.js';
import type { LabelMap, RGBImage } from './types.js';

async function readBytes(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (e) {
    throw new CtsError(`cannot read ${what} ${path}: ${describeFsError(e)}`);
  }
}

/** What a decode produces: 8-bit RGB of a photo, or the stored 8-bit values of a label PNG. */
type DecodeKind = 'image' | 'label';

function sharpOf(input: Uint8Array | Sharp, maxPixels: number | false): Sharp {
  // when decoding, limitInputPixels makes libvips itself refuse a size the header lied about
  return input instanceof Uint8Array ? sharp(input, { failOn: 'error', limitInputPixels: maxPixels }) : input.clone();
}

/**
 * The header of an image, checked against the pixel limit before any pixel is decoded; every decode
 * and every size probe (datasets compare a label's size with its image's) starts here.
 */
async function probe(input: Uint8Array | Sharp, name: string, maxPixels: number, kind: DecodeKind): Promise<Metadata> {
  let meta: Metadata;
  try {
    // the header only: the limit is ours to check below, with a message saying how to raise it
    meta = await sharpOf(input, false).metadata();
  } catch (e) {
    throw new CtsError(`cannot decode ${name}: ${describeSharpError(e, kind)}`);
  }
  checkPixels(meta.width ?? 0, meta.height ?? 0, maxPixels, name);
  return meta;
}

/** Runs a libvips decode, turning whatever it throws (truncated data, bad CRC) into one line naming the file. */
async function guarded<T>(name: string, kind: DecodeKind, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof CtsError) throw e;
    throw new CtsError(`cannot decode ${name}: ${describeSharpError(e, kind)}`);
  }
}

/** Decodes an image file to 8-bit RGB (alpha dropped, grey expanded, EXIF orientation ignored as in cv2/torchvision). */
export async function readImage(path: string, maxPixels = DEFAULT_MAX_PIXELS): Promise<RGBImage> {
  return decodeImage(await readBytes(path, 'image'), `image ${path}`, maxPixels);
}

/** Width and height of an image file from its header, without decoding the pixels. */
export async function readImageSize(path: string, maxPixels = DEFAULT_MAX_PIXELS): Promise<{ width: number; height: number }> {
  const meta = await probe(await readBytes(path, 'image'), `image ${path}`, maxPixels, 'image');
  return { width: meta.width!, height: meta.height! };
}

/**
 * Decodes encoded image bytes (or a sharp pipeline) to 8-bit RGB. The declared size is checked
 * against `maxPixels` before any pixel is decoded; `name` (e.g. "image photo.png") prefixes errors.
 */
export async function decodeImage(input: Uint8Array | Sharp, name: string, maxPixels = DEFAULT_MAX_PIXELS): Promise<RGBImage> {
  await probe(input, name, maxPixels, 'image');
  return guarded(name, 'image', async () => {
    const { data, info } = await sharpOf(input, maxPixels).removeAlpha().toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`${info.channels} channels after conversion`);
    return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  });
}

function describeSharpError(e: unknown, kind: DecodeKind): string {
  const m = String((e as Error)?.message ?? e).split('\n')[0]!;
  if (kind === 'label') return `${m} (expected an 8-bit PNG)`;
  return /unsupported image format/i.test(m) ? 'unsupported image format (expected PNG, JPEG, WebP, TIFF, GIF or AVIF)' : `${m} (expected a PNG/JPEG/WebP/TIFF image)`;
}

/**
 * Reads a label PNG as its stored 8-bit values: palette (P-mode) PNGs give their indices, greyscale
 * PNGs their grey level. RGB label images are rejected: their values would be colours, not ids.
 */
export async function readLabelPng(path: string, maxPixels = DEFAULT_MAX_PIXELS): Promise<LabelMap> {
  return decodeLabelPng(await readBytes(path, 'label'), path, maxPixels);
}

/** readLabelPng of bytes already read; `path` names the file in errors. */
export async function decodeLabelPng(bytes: Uint8Array, path: string, maxPixels = DEFAULT_MAX_PIXELS): Promise<LabelMap> {
  const name = `label ${path}`;
  const meta = await probe(bytes, name, maxPixels, 'label');
  if (meta.format !== 'png') throw new CtsError(`label ${path} is ${meta.format ?? 'not an image'}, expected an 8-bit PNG (lossy formats corrupt class ids)`);
  const paletted = meta.isPalette === true;
  if (!paletted && (meta.channels ?? 1) > 2) throw new CtsError(`label ${path} has ${meta.channels} colour channels, expected a single-channel (greyscale or palette) PNG of class ids`);
  if ((meta.depth ?? 'uchar') !== 'uchar' && !paletted) throw new CtsError(`label ${path} has ${meta.depth} samples, expected 8-bit`);
  const w = meta.width!, h = meta.height!;
  const data = paletted ? paletteIndices(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), path, w, h)
    : await guarded(name, 'label', () => sharpOf(bytes, maxPixels).extractChannel(0).raw().toBuffer());
  if (data.length !== w * h) throw new CtsError(`cannot decode ${name}: ${data.length} values for ${w}x${h} pixels`);
  return { width: w, height: h, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

/**
 * Palette PNGs: libvips expands them to RGB, so the indices are read from the PNG's IDAT ourselves
 * (zlib inflate + PNG row filters); the format is small and fixed, no library exposes raw indices.
 * The inflate stops at the size the header declares: a few kilobytes of zeros can otherwise claim
 * gigabytes.
 */
function paletteIndices(bytes: Buffer, path: string, width: number, height: number): Uint8Array {
  let off = 8, bitDepth = 0, interlace = 0;
  const idat: Buffer[] = [];
  while (off + 8 <= bytes.length) {
    const len = bytes.readUInt32BE(off);
    const type = bytes.toString('latin1', off + 4, off + 8);
    const body = bytes.subarray(off + 8, off + 8 + len);
    if (type === 'IHDR') {
      if (body.length !== 13) throw new CtsError(`label ${path} is corrupt (IHDR chunk of ${body.length} bytes, expected 13)`);
      if (body.readUInt32BE(0) !== width || body.readUInt32BE(4) !== height) throw new CtsError(`label ${path} is corrupt (IHDR size differs from the decoder's)`);
      bitDepth = body[8]!;
      interlace = body[12]!;
    } else if (type === 'IDAT') idat.push(body);
    else if (type === 'IEND') break;
    off += 12 + len;
  }
  if (interlace !== 0) throw new CtsError(`label ${path} is an interlaced palette PNG, which is not supported; re-save it without interlacing`);
  if (![1, 2, 4, 8].includes(bitDepth)) throw new CtsError(`label ${path}: palette bit depth ${bitDepth} is invalid`);
  const stride = Math.ceil((width * bitDepth) / 8);
  const expected = height * (stride + 1);
  let raw: Buffer;
  try {
    // one byte more than the image needs: reaching it proves the data inflates beyond the declared size
    raw = inflateSync(Buffer.concat(idat), { maxOutputLength: expected + 1 });
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') throw new CtsError(`label ${path} is corrupt: its image data inflates beyond the ${expected} bytes of a ${width}x${height} image`);
    throw new CtsError(`label ${path} is corrupt (bad compressed image data)`);
  }
  if (raw.length > expected) throw new CtsError(`label ${path} is corrupt: its image data inflates beyond the ${expected} bytes of a ${width}x${height} image`);
  if (raw.length < expected) throw new CtsError(`label ${path} is truncated`);
  const out = new Uint8Array(width * height);
  let prev = new Uint8Array(stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)]!;
    if (f > 4) throw new CtsError(`label ${path} is corrupt (row ${y} has filter type ${f})`);
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
