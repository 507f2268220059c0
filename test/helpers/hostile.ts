// Hostile inputs shared by the fault tests and the fuzz suite: hand-built PNG chunks (a palette PNG
// whose image data inflates past its declared size), a seeded byte mutator, and the check that a
// failed command printed one error line and no JavaScript stack.
import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';
import { crc32 } from '../../src/io/torch_save.js';

const PNG_SIGNATURE = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** One PNG chunk (length, type, body, CRC over type and body). */
export function pngChunk(type: string, body: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + body.length);
  out.writeUInt32BE(body.length, 0);
  out.write(type, 4, 'latin1');
  Buffer.from(body).copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + body.length)) >>> 0, 8 + body.length);
  return out;
}

/** An 8-bit palette PNG of `width` x `height` whose IDAT holds the deflated `raw` (filter bytes included). */
export function palettePng(width: number, height: number, raw: Uint8Array, colours = 4): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 3; // colour type: palette
  const plte = Uint8Array.from({ length: 3 * colours }, (_, i) => (i * 67) & 255);
  return Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', ihdr), pngChunk('PLTE', plte), pngChunk('IDAT', deflateSync(raw)), pngChunk('IEND', new Uint8Array(0))]);
}

/** Raw palette rows (filter 0) with pixel values (x + y) % colours. */
export function paletteRows(width: number, height: number, colours = 4): Uint8Array {
  const raw = new Uint8Array(height * (width + 1));
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) raw[y * (width + 1) + 1 + x] = (x + y) % colours;
  return raw;
}

/** mulberry32, so every mutated input can be reproduced from its seed. */
export { rng as seeded } from './random.js';

/** Asserts a failed command's output: exit 1, exactly one `cts-seg: error:` line, no stack frame. */
export function assertOneLineError(r: { code: number; stderr: string }, pattern?: RegExp): void {
  assert.equal(r.code, 1, r.stderr);
  const errors = r.stderr.split('\n').filter((l) => l.startsWith('cts-seg: error:'));
  assert.equal(errors.length, 1, r.stderr);
  assert.doesNotMatch(r.stderr, /^\s+at /m, r.stderr);
  if (pattern) assert.match(errors[0]!, pattern);
}
