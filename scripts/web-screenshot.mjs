// `npm run web:screenshot`: serves web/dist with `vite preview` on 127.0.0.1, opens it in headless
// Chromium (playwright-core, Debian's /usr/bin/chromium or CHROMIUM_PATH, no network), waits for the
// sample image to be segmented and saves docs/web-screenshot.png. Run `npm run web:build` first.
import { mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { preview } from 'vite';
import { chromium } from 'playwright-core';

const out = process.argv[2] ?? 'docs/web-screenshot.png';
const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
if (!existsSync('web/dist/index.html')) throw new Error('web/dist is missing: run npm run web:build first');
if (!existsSync(executablePath)) throw new Error(`Chromium not found at ${executablePath} (apt-get install chromium, or set CHROMIUM_PATH)`);

const server = await preview({ configFile: 'web/vite.config.ts', preview: { host: '127.0.0.1', port: 0 }, logLevel: 'warn' });
const profile = await mkdtemp(join(tmpdir(), 'cts-shot-'));
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath, headless: true, viewport: { width: 1280, height: 720 }, deviceScaleFactor: 1,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
});
try {
  const page = await ctx.newPage();
  await page.goto(server.resolvedUrls.local[0]);
  await page.waitForFunction("['done', 'error'].includes(window.ctsSeg?.state)", undefined, { timeout: 120_000 });
  const state = await page.evaluate('window.ctsSeg.state');
  if (state !== 'done') throw new Error(`the page ended in state ${state}: ${await page.evaluate('window.ctsSeg.error')}`);
  await page.screenshot({ path: out, fullPage: true });
  process.stdout.write(`wrote ${out}\n`);
} finally {
  await ctx.close();
  await server.close();
  await rm(profile, { recursive: true, force: true });
}
