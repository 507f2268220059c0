// Test helpers for the data layer: tiny images and labels written with sharp, zip/tar archives built in
// memory, and a node:http server on 127.0.0.1 that records what it was asked.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import yazl from 'yazl';
import { writePng } from '../../src/data/image.js';

/** A fresh temporary folder, removed by the returned cleanup. */
export function tempDir(prefix = 'cts-data-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Writes a w x h RGB image (JPEG for .jpg, PNG otherwise) with a deterministic pattern. */
export async function writeRgb(path: string, w = 64, h = 48, seed = 1): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const px = Buffer.alloc(w * h * 3);
  for (let i = 0; i < px.length; i++) px[i] = (i * 7 + seed * 31) & 255;
  const img = sharp(px, { raw: { width: w, height: h, channels: 3 } });
  await (path.endsWith('.jpg') ? img.jpeg() : img.png()).toFile(path);
}

/** Writes a greyscale label PNG whose pixels cycle through `values`. */
export async function writeLabel(path: string, values: number[], w = 64, h = 48): Promise<Uint8Array> {
  await mkdir(dirname(path), { recursive: true });
  const data = new Uint8Array(w * h);
  for (let i = 0; i < data.length; i++) data[i] = values[i % values.length]!;
  await writePng(path, w, h, 1, data);
  return data;
}

/** Builds a zip archive in memory from (name, bytes) entries. */
export function zipBuffer(entries: { name: string; data: Buffer | Uint8Array }[]): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  for (const e of entries) zip.addBuffer(Buffer.from(e.data), e.name);
  zip.end();
  return new Promise((res, rej) => {
    const chunks: Buffer[] = [];
    zip.outputStream.on('data', (c: Buffer) => chunks.push(c)).on('end', () => res(Buffer.concat(chunks))).on('error', rej);
  });
}

/** Encodes an image or label to bytes: RGB (JPEG for jpg=true, else PNG) or a greyscale PNG of `values`. */
export async function rgbBytes(w: number, h: number, jpg: boolean, seed = 1): Promise<Buffer> {
  const px = Buffer.alloc(w * h * 3);
  for (let i = 0; i < px.length; i++) px[i] = (i * 5 + seed * 17) & 255;
  const img = sharp(px, { raw: { width: w, height: h, channels: 3 } });
  return (jpg ? img.jpeg() : img.png()).toBuffer();
}

/** A greyscale (single-channel) PNG whose pixels cycle through `values`. */
export async function greyBytes(w: number, h: number, values: number[]): Promise<Buffer> {
  const px = Buffer.alloc(w * h);
  for (let i = 0; i < px.length; i++) px[i] = values[i % values.length]!;
  return sharp(px, { raw: { width: w, height: h, channels: 1 } }).toColourspace('b-w').png().toBuffer();
}

/** One request the test server saw. */
export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** An HTTP server on 127.0.0.1 (random port) that records every request before handing it to `handler`. */
export async function serve(handler: (req: IncomingMessage, res: ServerResponse, body: string) => void): Promise<{ base: string; seen: SeenRequest[]; close: () => Promise<void> }> {
  const seen: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      handler(req, res, body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    base: `http://127.0.0.1:${port}`,
    seen,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

/**
 * Serves `data` with Range support. When `dropAfter` is set, the first response sends that many bytes of
 * the body (with the full Content-Length announced) and then closes the connection: a graceful close,
 * so the client receives exactly those bytes before it sees the transfer cut short (a destroyed socket
 * may discard bytes still in flight, which made the resume offset depend on timing).
 */
export function sendFile(req: IncomingMessage, res: ServerResponse, data: Buffer, opts: { dropAfter?: number; ignoreRange?: boolean; headers?: Record<string, string> } = {}): void {
  const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  const start = range && !opts.ignoreRange ? Number(range[1]) : 0;
  const body = data.subarray(start);
  const headers: Record<string, string | number> = { 'content-type': 'application/octet-stream', 'content-length': body.length, ...opts.headers };
  if (start > 0) headers['content-range'] = `bytes ${start}-${data.length - 1}/${data.length}`;
  res.writeHead(start > 0 ? 206 : 200, headers);
  if (opts.dropAfter !== undefined) {
    res.write(body.subarray(0, opts.dropAfter), () => setTimeout(() => res.socket?.end(), 20));
    return;
  }
  res.end(body);
}
