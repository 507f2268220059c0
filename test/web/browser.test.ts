// The web page in Debian's Chromium (headless, driven by playwright-core, no network). The page is a
// client of the library's browser entry (`cts-seg/web`): it loads the shipped exports from a local
// static server with Segmenter.load and segments the bundled sample image with Segmenter.segment on
// onnxruntime-web; its class maps and shared mask are identical to the Node entry's Segmenter on the
// same files and image (onnxruntime-node, the PNG decoded by sharp), in the page's thread and with
// `worker: true`. A model URL that does not exist ends in one clear error. Skips with a reason where
// Chromium is not installed (`.ci/run` installs it).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BrowserContext } from 'playwright-core';
import { Segmenter, type SegmentResult } from '../../src/index.js';
import { chromiumSkip, openBrowser, type BrowserSession } from '../helpers/browser.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const WEB = join(ROOT, 'web');
const DIST = join(WEB, 'dist');
const skip = chromiumSkip;


/** Newest modification time of the files under a folder. */
function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** Builds web/dist when it is missing or older than the page's sources, the library's or the model files. */
function ensureBuilt(): void {
  const built = join(DIST, 'index.html');
  const sources = Math.max(
    newest(join(WEB, 'src')), newest(join(WEB, 'public')), newest(join(ROOT, 'src')),
    ...['index.html', 'vite.config.ts'].map((f) => statSync(join(WEB, f)).mtimeMs), statSync(join(ROOT, 'package.json')).mtimeMs,
  );
  if (existsSync(built) && statSync(built).mtimeMs >= sources) return;
  execFileSync(process.execPath, [join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', '--config', join(WEB, 'vite.config.ts'), '--logLevel', 'warn'], { cwd: ROOT, stdio: 'inherit' });
}



/** What the page exposes in window.ctsSeg (typed arrays as plain arrays), and what it shows. */
interface PageResult {
  state: string;
  provider?: string;
  worker: boolean;
  fallbacks: string[];
  error?: string;
  status: string;
  domProvider: string;
  width: number;
  height: number;
  classMap: number[];
  maskShared: number[];
  baselineClassMap: number[];
}

let session: BrowserSession | undefined, context: BrowserContext | undefined, base = '';

before(async () => {
  if (skip) return;
  ensureBuilt();
  session = await openBrowser(DIST);
  ({ context, base } = session);
});

after(async () => {
  await session?.close();
});

/** Opens the page with a query string and waits until it has segmented the sample (or failed). */
async function openPage(query: string): Promise<{ r: PageResult; logs: string }> {
  const page = await context!.newPage();
  const logs: string[] = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  try {
    await page.goto(base + query);
    // string expressions: they run in the page, where window and document exist (this file is compiled for Node)
    await page.waitForFunction("['done', 'error'].includes(window.ctsSeg?.state)", undefined, { timeout: 150_000 });
    const r = (await page.evaluate(`(() => {
      const s = window.ctsSeg, arr = (k) => (s[k] ? Array.from(s[k]) : []), text = (id) => document.getElementById(id).textContent;
      return {
        state: s.state, provider: s.provider, worker: s.worker, fallbacks: s.fallbacks, error: s.error, status: text('status'),
        domProvider: text('provider'), width: s.width, height: s.height,
        classMap: arr('classMap'), maskShared: arr('maskShared'), baselineClassMap: arr('baselineClassMap'),
      };
    })()`)) as PageResult;
    return { r, logs: logs.join('\n') };
  } finally {
    await page.close();
  }
}

/** The Node entry's Segmenter on the same files and image (cpu provider, sharp decoding). */
async function nodeSegment(model: string): Promise<SegmentResult> {
  const seg = await Segmenter.load(join(DIST, 'models', model), { externalData: [{ path: 'weights.bin', data: join(DIST, 'models', 'weights.bin') }] });
  try {
    return await seg.segment(join(DIST, 'sample.png'));
  } finally {
    await seg.dispose();
  }
}

let reference: Promise<{ cts: SegmentResult; baseline: SegmentResult }> | undefined;
function nodeReference(): Promise<{ cts: SegmentResult; baseline: SegmentResult }> {
  reference ??= (async () => ({ cts: await nodeSegment('cts.onnx'), baseline: await nodeSegment('baseline.onnx') }))();
  return reference;
}

/** Indices where two maps differ (the first few, for the message) and how many. */
function differences(page: number[], node: Uint8Array): { count: number; first: number[] } {
  const first: number[] = [];
  let count = Math.abs(page.length - node.length);
  for (let i = 0; i < Math.min(page.length, node.length); i++) {
    if (page[i] === node[i]) continue;
    count++;
    if (first.length < 5) first.push(i);
  }
  return { count, first };
}

/** The page's maps are the Node Segmenter's, pixel for pixel. */
async function assertMatchesNode(r: PageResult, logs: string, t: { diagnostic(m: string): void }): Promise<void> {
  assert.equal(r.state, 'done', `page state ${r.state}: ${r.error ?? ''}\n${logs}`);
  const { cts, baseline } = await nodeReference();
  assert.deepEqual([r.width, r.height], [cts.width, cts.height], 'the class map is at the image size');
  for (const [name, pageMap, node] of [
    ['CTS class map', r.classMap, cts.classMap], ['shared mask', r.maskShared, cts.maskShared!], ['no-sharing class map', r.baselineClassMap, baseline.classMap],
  ] as const) {
    const d = differences(pageMap, node);
    assert.equal(d.count, 0, `${name}: ${d.count} of ${node.length} pixels differ from the Node Segmenter (first at ${d.first.join(', ')})`);
    t.diagnostic(`${name}: ${node.length}/${node.length} pixels identical to the Node Segmenter`);
  }
  // not degenerate: the sample has several classes, and some of it is shared and some not
  assert.ok(new Set(r.classMap).size >= 2, 'class map has one class only');
  const shared = r.maskShared.reduce((a, b) => a + b, 0);
  assert.ok(shared > 0 && shared < r.maskShared.length, `shared pixels: ${shared}`);
}

test('the page segments the sample through cts-seg/web exactly as the Node Segmenter does', { skip, timeout: 180_000 }, async (t) => {
  const { r, logs } = await openPage('?provider=wasm');
  await assertMatchesNode(r, logs, t);
  assert.equal(r.provider, 'wasm');
  assert.equal(r.domProvider, 'wasm');
  assert.equal(r.worker, false);
});

test('with ?worker=1 the models run in a Web Worker, with the same result, after falling back from WebGPU', { skip, timeout: 180_000 }, async (t) => {
  const { r, logs } = await openPage('?worker=1');
  await assertMatchesNode(r, logs, t);
  assert.equal(r.worker, true);
  // no GPU here (--disable-gpu): the worker's WebGPU attempt fails, it falls back to wasm, and says why
  assert.equal(r.provider, 'wasm');
  assert.equal(r.domProvider, 'wasm (worker)');
  assert.ok(r.fallbacks.some((m) => m.includes('no WebGPU adapter')), `fallback messages: ${JSON.stringify(r.fallbacks)}`);
});

for (const worker of [false, true]) {
  test(`a ?model= URL that is not there ends in one clear error${worker ? ' (worker)' : ''}`, { skip, timeout: 60_000 }, async () => {
    const { r, logs } = await openPage(`?model=models/missing.onnx${worker ? '&worker=1' : ''}`);
    assert.equal(r.state, 'error', logs);
    assert.equal(r.error, `cannot download ${base}models/missing.onnx: HTTP 404 Not Found`);
    assert.equal(r.status, `error: ${r.error}`);
    assert.equal(r.classMap.length, 0, 'nothing was segmented');
  });
}
