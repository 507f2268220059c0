// Fuzzing the guarded decode path: mutated PNGs (RGB, greyscale and palette labels) and JPEGs through
// decodeImage and decodeLabelPng. Every outcome is a decoded image or one CtsError line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { decodeImage, decodeLabelPng } from '../../src/data/image.js';
import { palettePng, paletteRows } from '../helpers/hostile.js';
import { fuzz, JPEG, PNG } from './mutate.js';

/** A small limit keeps a mutated size field from asking for a large (legitimate) allocation. */
const MAX_PIXELS = 1 << 20;

function pattern(w: number, h: number, channels: number): Buffer {
  const px = Buffer.alloc(w * h * channels);
  for (let i = 0; i < px.length; i++) px[i] = (i * 37 + (i >> 5) * 11) & 255;
  return px;
}

const raw = (w: number, h: number, c: 1 | 3) => sharp(pattern(w, h, c), { raw: { width: w, height: h, channels: c } });

const checkImage = (img: { width: number; height: number; data: Uint8Array }, channels: number) => assert.equal(img.data.length, img.width * img.height * channels);

test('mutated PNGs decode or give one CtsError line, as images and as labels', async () => {
  const rgb = [await raw(32, 24, 3).png().toBuffer(), await raw(17, 9, 3).png({ progressive: true }).toBuffer()]; // the second interlaced
  const labels = [await raw(40, 16, 1).toColourspace('b-w').png().toBuffer(), palettePng(13, 7, paletteRows(13, 7)), palettePng(64, 32, paletteRows(64, 32, 16), 16)];
  const images = await fuzz('png image', 1, 600, [...rgb, ...labels], PNG, async (b) => checkImage(await decodeImage(b, 'image fuzz.png', MAX_PIXELS), 3));
  const lbls = await fuzz('png label', 2, 800, labels, PNG, async (b) => checkImage(await decodeLabelPng(b, 'fuzz.png', MAX_PIXELS), 1));
  for (const s of [images, lbls]) assert.ok(s.refused > 50 && s.accepted > 20, JSON.stringify(s));
});

test('mutated JPEGs decode or give one CtsError line', async () => {
  const seeds = [await raw(32, 24, 3).jpeg({ quality: 80 }).toBuffer(), await raw(24, 40, 1).jpeg({ progressive: true }).toBuffer()];
  const s = await fuzz('jpeg', 3, 500, seeds, JPEG, (b) => decodeImage(b, 'image fuzz.jpg', MAX_PIXELS));
  assert.ok(s.refused > 50 && s.accepted > 20, JSON.stringify(s));
});
