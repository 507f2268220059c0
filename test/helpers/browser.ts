// What the browser tests share: Debian's Chromium with no background traffic (the machines are
// offline and a test must not try), a static file server on 127.0.0.1, and the two started together.
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, normalize, sep } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';

/** The Chromium binary (CHROMIUM_PATH, else Debian's). */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Chromium flags: headless, no sandbox (root in CI), no GPU, and no network traffic of its own. */
export const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];

/** The skip reason of a browser test where Chromium is missing, else false. */
export const chromiumSkip: string | false = existsSync(CHROMIUM) ? false : `Chromium not found at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`;

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css',
  '.wasm': 'application/wasm', '.json': 'application/json', '.png': 'image/png', '.onnx': 'application/octet-stream',
};

/** A static file server for `dir` on 127.0.0.1 (ephemeral port), without cross-origin isolation headers: the plainest host. */
export function serveStatic(dir: string): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(/^([/\\])+/, '');
    const file = join(dir, path === '' ? 'index.html' : path);
    if (!file.startsWith(dir + sep) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end('not found');
      return;
    }
    readFile(file).then(
      (body) => res.writeHead(200, { 'content-type': MIME[extname(file)] ?? 'application/octet-stream' }).end(body),
      () => res.writeHead(500).end(),
    );
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    const a = server.address() as { port: number };
    resolve({ server, url: `http://127.0.0.1:${a.port}/` });
  }));
}

/** A served folder and a headless Chromium to open it in; `close` ends both and removes the profile. */
export interface BrowserSession {
  context: BrowserContext;
  /** The server's root URL, ending in '/'. */
  base: string;
  close(): Promise<void>;
}

/** Serves `dir` on 127.0.0.1 and starts Chromium with a throwaway profile. */
export async function openBrowser(dir: string): Promise<BrowserSession> {
  const { server, url } = await serveStatic(dir);
  const profile = await mkdtemp(join(tmpdir(), 'cts-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
  return {
    context, base: url,
    async close() {
      await context.close();
      server.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}
