// The browser half of the package test: a minimal Vite app that imports `cts-seg/web` from the
// installed package (not from the checkout), built with the repository's Vite, served from 127.0.0.1
// and run in Debian's Chromium through playwright-core. Page code is kept in strings because this
// file is compiled for Node (no DOM types).
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_FLAGS, serveStatic } from '../helpers/browser.js';



/** One run of the page: the Segmenter on the main thread, or with `worker: true`. */
export interface PageRun {
  state: 'done' | 'error';
  error?: string;
  provider?: string;
  width?: number;
  height?: number;
  classMap?: number[];
}

// Both runs load the same model file by URL and the sample PNG as a Blob (the browser decodes it),
// which is what a user's page does; the class maps go to window.ctsE2E for the test to read.
const MAIN_JS = `import { Segmenter } from 'cts-seg/web';

async function run(worker) {
  try {
    const seg = await Segmenter.load('./model.onnx', { provider: 'wasm', worker });
    const image = await (await fetch('./sample.png')).blob();
    const r = await seg.segment(image);
    const out = { state: 'done', provider: seg.info.provider, width: r.width, height: r.height, classMap: Array.from(r.classMap) };
    await seg.dispose();
    return out;
  } catch (e) {
    return { state: 'error', error: String(e && e.stack ? e.stack : e) };
  }
}

window.ctsE2E = { state: 'running' };
const main = await run(false);
const worker = await run(true);
window.ctsE2E = { state: 'done', main, worker };
`;

const INDEX_HTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>cts-seg e2e</title></head>
<body><script type="module" src="./main.js"></script></body></html>
`;

// a plain object, so the config needs no 'vite' import resolvable from the temporary app
const VITE_CONFIG = `export default {
  base: './',
  logLevel: 'warn',
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 8192 },
  worker: { format: 'es' },
};
`;

/**
 * Writes the app into `dir` (which must lie inside the folder where cts-seg is installed, so that
 * `cts-seg/web` resolves to the installed copy), with the model and image as static files, and
 * builds it with the repository's Vite. Returns the built folder.
 */
export function buildApp(dir: string, repoRoot: string, model: string, image: string): string {
  mkdirSync(join(dir, 'public'), { recursive: true });
  writeFileSync(join(dir, 'index.html'), INDEX_HTML);
  writeFileSync(join(dir, 'main.js'), MAIN_JS);
  writeFileSync(join(dir, 'vite.config.mjs'), VITE_CONFIG);
  copyFileSync(model, join(dir, 'public', 'model.onnx'));
  copyFileSync(image, join(dir, 'public', 'sample.png'));
  execFileSync(process.execPath, [join(repoRoot, 'node_modules/vite/bin/vite.js'), 'build', '--config', 'vite.config.mjs'], { cwd: dir, stdio: 'inherit' });
  return join(dir, 'dist');
}


/** Opens the built app in Chromium and returns both runs, with the page's console for messages. */
export async function runInChromium(dist: string, timeoutMs: number): Promise<{ main: PageRun; worker: PageRun; logs: string[] }> {
  const { server, url } = await serveStatic(dist);
  const profile = await mkdtemp(join(tmpdir(), 'cts-e2e-chromium-'));
  const logs: string[] = [];
  try {
    const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
    try {
      const page = await context.newPage();
      page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
      page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
      await page.goto(url);
      await page.waitForFunction("window.ctsE2E?.state === 'done'", undefined, { timeout: timeoutMs }).catch((e: Error) => {
        throw new Error(`the page did not finish: ${e.message}\n${logs.join('\n')}`);
      });
      const r = (await page.evaluate('({ main: window.ctsE2E.main, worker: window.ctsE2E.worker })')) as { main: PageRun; worker: PageRun };
      return { ...r, logs };
    } finally {
      await context.close();
    }
  } finally {
    server.close();
    await rm(profile, { recursive: true, force: true });
  }
}
