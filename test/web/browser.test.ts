// The web page in Debian's Chromium (headless, driven by playwright-core, no network): it loads the
// shipped model from a local static server, segments the bundled sample image with onnxruntime-web,
// reports its execution provider, and its class maps and shared-token mask equal onnxruntime-node's
// on the same exported files and the same pixels (the PNG decoded by sharp). Skips with a reason
// where Chromium is not installed (`.ci/run` installs it).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import ort from 'onnxruntime-node';
import { chromium, type BrowserContext } from 'playwright-core';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const WEB = join(ROOT, 'web');
const DIST = join(WEB, 'dist');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
// no background traffic at all: the machine has no network, and the test must not try
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];
const skip = existsSync(CHROMIUM) ? false : `Chromium not found at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`;

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css',
  '.wasm': 'application/wasm', '.json': 'application/json', '.png': 'image/png', '.onnx': 'application/octet-stream',
};

/** Newest modification time of the files under a folder. */
function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** Builds web/dist when it is missing or older than the page's sources or model files. */
function ensureBuilt(): void {
  const built = join(DIST, 'index.html');
  const sources = Math.max(newest(join(WEB, 'src')), newest(join(WEB, 'public')), statSync(join(WEB, 'index.html')).mtimeMs);
  if (existsSync(built) && statSync(built).mtimeMs >= sources) return;
  execFileSync(process.execPath, [join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', '--config', join(WEB, 'vite.config.ts'), '--logLevel', 'warn'], { cwd: ROOT, stdio: 'inherit' });
}

/** A static file server for web/dist on 127.0.0.1 (ephemeral port). */
function serve(dir: string): Promise<{ server: Server; url: string }> {
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

interface PageResult {
  state: string;
  provider: string;
  error?: string;
  domProvider: string;
  width: number;
  height: number;
  classMap: number[];
  maskShared: number[];
  baselineClassMap: number[];
}

let context: BrowserContext | undefined, server: Server | undefined, profile = '';

before(async () => {
  if (!skip) ensureBuilt();
});

after(async () => {
  await context?.close();
  server?.close();
  if (profile) await rm(profile, { recursive: true, force: true });
});

async function nodeRun(model: string, rgb: Uint8Array, h: number, w: number): Promise<Record<string, ort.Tensor>> {
  const s = await ort.InferenceSession.create(model);
  try {
    return await s.run({ input: new ort.Tensor('uint8', rgb, [1, h, w, 3]) });
  } finally {
    await s.release();
  }
}

/** Pixels where two class maps differ, other than numerical near-ties of the Node logits (top-2 gap < tol). */
function realDifferences(page: number[], node: ort.Tensor, logits: ort.Tensor, tol: number): { differ: number; real: number } {
  const [, , h, w] = logits.dims as number[];
  const l = logits.data as Float32Array, ref = node.data as Uint8Array;
  let differ = 0, real = 0;
  for (let px = 0; px < h! * w!; px++) {
    if (page[px] === ref[px]) continue;
    differ++;
    const gap = Math.abs(l[page[px]! * h! * w! + px]! - l[ref[px]! * h! * w! + px]!);
    if (gap >= tol) real++;
  }
  return { differ, real };
}

test('the page segments the sample image in Chromium exactly as onnxruntime-node does', { skip, timeout: 180_000 }, async (t) => {
  const served = await serve(DIST);
  server = served.server;
  profile = await mkdtemp(join(tmpdir(), 'cts-chromium-'));
  context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: FLAGS });
  const page = await context.newPage();
  const logs: string[] = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  await page.goto(served.url);
  // string expressions: they run in the page, where window and document exist (this file is compiled for Node)
  await page.waitForFunction("['done', 'error'].includes(window.ctsSeg?.state)", undefined, { timeout: 150_000 });
  const r = (await page.evaluate(`(() => {
    const s = window.ctsSeg, arr = (k) => (s[k] ? Array.from(s[k]) : []);
    return {
      state: s.state, provider: s.provider, error: s.error, domProvider: document.getElementById('provider').textContent,
      width: s.width, height: s.height, classMap: arr('classMap'), maskShared: arr('maskShared'), baselineClassMap: arr('baselineClassMap'),
    };
  })()`)) as PageResult;
  assert.equal(r.state, 'done', `page state ${r.state}: ${r.error ?? ''}\n${logs.join('\n')}`);
  // no GPU here (--disable-gpu): onnxruntime-web must have fallen back to wasm, and says so
  assert.equal(r.provider, 'wasm');
  assert.equal(r.domProvider, 'wasm');

  const manifest = JSON.parse(await readFile(join(DIST, 'models', 'manifest.json'), 'utf8')) as { size: [number, number]; cts: { numShared: number } };
  const [h, w] = manifest.size;
  const { data, info } = await sharp(join(DIST, 'sample.png')).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual([info.height, info.width, info.channels], [h, w, 3], 'the sample is at the model size, so the page does not resample it');
  assert.deepEqual([r.height, r.width], [h, w]);
  const rgb = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const cts = await nodeRun(join(DIST, 'models', 'cts.onnx'), rgb, h, w);
  const base = await nodeRun(join(DIST, 'models', 'baseline.onnx'), rgb, h, w);

  assert.deepEqual(r.maskShared, Array.from(cts.mask_shared!.data as Uint8Array), 'shared superpatches');
  assert.equal(r.maskShared.reduce((a, b) => a + b, 0), manifest.cts.numShared);
  for (const [name, pageMap, node] of [['CTS', r.classMap, cts], ['no sharing', r.baselineClassMap, base]] as const) {
    assert.equal(pageMap.length, h * w, `${name}: class map size`);
    const d = realDifferences(pageMap, node.class_map!, node.logits!, 1e-4);
    assert.equal(d.real, 0, `${name}: ${d.real} pixels differ from onnxruntime-node beyond float near-ties`);
    assert.ok(d.differ <= 3, `${name}: ${d.differ} near-tie pixels differ`);
    t.diagnostic(`${name}: ${h * w - d.differ}/${h * w} pixels identical to onnxruntime-node`);
    // the model is not degenerate: the sample has several classes
    assert.ok(new Set(pageMap).size >= 2, `${name}: class map has one class only`);
  }
});
