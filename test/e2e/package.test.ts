// The package as a user gets it: `npm pack`, then in an empty project the install line and the Node
// example copied out of README.md (between <!-- example:... --> markers, so the docs cannot drift),
// the installed CLI, the installed types under `nodenext`, and a Vite app on `cts-seg/web` in
// Chromium giving the same class map as Node on the same model file. Run by `npm run test:e2e`
// (not `npm test`: it takes minutes and needs the npm cache that `npm ci` fills).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { markedBlock } from '../helpers/markdown.js';
import { sharedDir } from '../helpers/fixtures.js';
import { buildApp, runInChromium, type PageRun } from './webapp.js';
import { chromiumSkip } from '../helpers/browser.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const SAMPLE = join(ROOT, 'web/public/sample.png');
const WEB_ENTRY = join(ROOT, 'dist/src/web/index.js');

/**
 * The environment of a user's shell: `npm run test:e2e` exports the checkout's npm config as
 * npm_config_* (including this repository's `onnxruntime-node-install=skip`), which would make the
 * README's install line pass without its own ONNXRUNTIME_NODE_INSTALL=skip. Only the cache location
 * is kept, since that is where `npm ci` put the dependencies.
 */
function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^npm_/i.test(k) || /^npm_config_cache$/i.test(k)) env[k] = v;
  }
  delete env.INIT_CWD;
  delete env.ONNXRUNTIME_NODE_INSTALL;
  return { ...env, ...extra };
}

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = userEnv()): { code: number; stdout: string; out: string } {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout, out: `${r.stdout}${r.stderr}` };
}

/** Stdout of a command that must succeed (its stderr joins the message when it does not). */
function mustRun(cmd: string, args: string[], cwd: string, env?: NodeJS.ProcessEnv): string {
  const r = run(cmd, args, cwd, env);
  assert.equal(r.code, 0, `${cmd} ${args.join(' ')} exited ${r.code}:\n${r.out}`);
  return r.stdout;
}

function since(t0: number): string {
  return `${((performance.now() - t0) / 1000).toFixed(1)} s`;
}

/** Files under a folder whose name matches, recursively. */
function findFiles(dir: string, re: RegExp): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true, recursive: true }).filter((e) => e.isFile() && re.test(e.name)).map((e) => join(e.parentPath, e.name));
}

interface Fetch { status: string; url: string; cache: string }

let work = '', app = '', tarball = '';
let installMode: 'offline' | 'prefer-offline' = 'offline';
let installSkip: string | undefined;
let fetches: Fetch[] = [];
let packedFiles: string[] = [];
const notes: string[] = [];

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'cts-e2e-'));
  app = join(work, 'app');
  mkdirSync(app);
  // the test script has just compiled dist/, so pack it as is: `prepare` would compile it again
  let t0 = performance.now();
  const packed = JSON.parse(mustRun('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], ROOT)) as { filename: string; files: { path: string }[]; size: number }[];
  tarball = packed[0]!.filename;
  packedFiles = packed[0]!.files.map((f) => f.path);
  notes.push(`npm pack: ${tarball}, ${(packed[0]!.size / 1024).toFixed(0)} KiB, ${packedFiles.length} files (${since(t0)})`);

  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'cts-seg-e2e-app', version: '1.0.0', private: true, type: 'module' }, null, 2));
  copyFileSync(join(work, tarball), join(app, tarball));
  const line = markedBlock(README, 'example:install').code.split('\n').find((l) => /\bnpm install\b.*--offline/.test(l) && !l.trim().startsWith('#'));
  assert.ok(line, 'README.md <!-- example:install --> has no `npm install ... --offline` line');
  assert.match(line, /^ONNXRUNTIME_NODE_INSTALL=skip /, 'the README install line sets ONNXRUNTIME_NODE_INSTALL=skip');
  assert.ok(line.includes(`./${tarball}`), `the README install line names ./${tarball} (what npm pack wrote); update README.md after a version change`);
  // http-level log lines say, for every request, whether the npm cache answered it
  const env = userEnv({ npm_config_loglevel: 'http' });
  t0 = performance.now();
  let r = run('sh', ['-c', line], app, env);
  if (r.code !== 0 && /ENOTCACHED/.test(r.out)) {
    // npm 11 resolves a new install from full registry documents, which `npm ci` (lockfile-driven)
    // never caches; this is the README's documented fallback
    installMode = 'prefer-offline';
    notes.push(`--offline failed (${/ENOTCACHED[^\n]*\n[^\n]*/.exec(r.out)?.[0].replace(/\s+/g, ' ')}); falling back to --prefer-offline`);
    r = run('sh', ['-c', line.replace('--offline', '--prefer-offline')], app, env);
  }
  const unreachable = /\b(ENOTCACHED|ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|ENETUNREACH)\b/.exec(r.out);
  if (r.code !== 0 && installMode === 'prefer-offline' && unreachable) {
    // not a defect of the package: without registry access npm 11 cannot resolve a new install
    // from a lockfile-filled cache at all; say so loudly instead of failing CI on the network
    installSkip = `the npm registry is unreachable (${unreachable[1]}) and the npm cache lacks full registry documents, so npm 11 cannot install the tarball here`;
    console.log(`# SKIPPING the installed-package checks: ${installSkip}`);
    return;
  }
  assert.equal(r.code, 0, `install failed:\n${r.out}`);
  fetches = [...r.out.matchAll(/npm http fetch \w+ (\d+) (\S+) .*?\((cache [a-z]+)\)/g)].map((m) => ({ status: m[1]!, url: m[2]!, cache: m[3]! }));
  notes.push(`install (${installMode}): ${since(t0)}`);

  t0 = performance.now();
  // a model with token sharing, so the policy network and sharing run too
  mustRun('npx', ['--offline', 'cts-seg', 'init', '--backbone', 'vit-ti', '--dataset', 'ade20k', '--num-shared', '64', '--out', 'model.safetensors'], app);
  notes.push(`npx cts-seg init: ${since(t0)}`);
});

after(async () => {
  if (process.env.CTS_E2E_KEEP) console.log(`kept ${work}`);
  else if (work) await rm(work, { recursive: true, force: true });
});

test('npm pack ships the compiled library, its types and the README, and no tests or source maps', (t) => {
  for (const n of notes) t.diagnostic(n);
  for (const f of ['package.json', 'README.md', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/cli/main.js']) assert.ok(packedFiles.includes(f), `${f} is not in the tarball`);
  if (existsSync(WEB_ENTRY)) assert.ok(packedFiles.includes('dist/src/web/index.js') && packedFiles.includes('dist/src/web/index.d.ts'), 'the web entry is not in the tarball');
  assert.deepEqual(packedFiles.filter((f) => !f.startsWith('dist/src/') && !['package.json', 'README.md', 'LICENSE'].includes(f)), []);
  assert.deepEqual(packedFiles.filter((f) => f.endsWith('.map') || f.includes('/test/')), []);
});

test('the README install line installs the tarball from the npm cache, without the CUDA download', (t) => {
  if (installSkip) return t.skip(installSkip);
  const downloaded = fetches.filter((f) => /miss|revalidated|updated/.test(f.cache));
  t.diagnostic(`mode ${installMode}: ${fetches.length} requests, ${fetches.length - downloaded.length} answered by the cache, ${downloaded.length} from the registry`);
  if (installMode === 'offline') {
    assert.deepEqual(downloaded, [], 'npm --offline cannot download; any registry answer is a bug in this check');
  } else {
    const tarballs = downloaded.filter((f) => f.url.endsWith('.tgz'));
    t.diagnostic(`registry documents fetched: ${downloaded.length - tarballs.length}; package tarballs downloaded: ${tarballs.length} ${tarballs.map((f) => f.url.split('/').pop()).join(' ')}`);
  }
  const ortBin = join(app, 'node_modules/onnxruntime-node/bin');
  assert.ok(findFiles(ortBin, /onnxruntime_binding\.node$/).length > 0, 'onnxruntime-node is installed with its bundled CPU binary');
  assert.deepEqual(findFiles(ortBin, /providers_cuda|providers_tensorrt/), [], 'ONNXRUNTIME_NODE_INSTALL=skip kept the CUDA provider download out');
  for (const dev of ['typescript', 'vite', 'playwright-core']) {
    assert.ok(!existsSync(join(app, 'node_modules', dev)), `devDependency ${dev} was installed into the user's project`);
  }
});

/** A 480x360 photo-like picture: CamVid's first validation image when ../shared has it, else a synthetic street. */
async function streetPhoto(dir: string): Promise<{ path: string; what: string }> {
  const camvid = sharedDir() && join(sharedDir()!, 'data/camvid/val');
  if (camvid && existsSync(camvid)) {
    const first = readdirSync(camvid).filter((f) => f.endsWith('.png')).sort()[0];
    if (first) {
      const m = await sharp(join(camvid, first)).metadata();
      if (m.width === 480 && m.height === 360) return { path: join(camvid, first), what: `CamVid ${first}` };
    }
  }
  const w = 480, h = 360, px = new Uint8Array(w * h * 3);
  let seed = 1;
  const noise = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 24) - 128;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      // sky, a row of buildings of varying height, road below the horizon; sensor-like noise on all
      const building = y > 80 + 60 * Math.sin(x / 37) ** 2 && y < 220;
      const rgb = y >= 220 ? [90, 88, 92] : building ? [150 - (x % 96), 110, 90 + (x % 64)] : [120 + y / 3, 170 + y / 4, 235];
      for (let c = 0; c < 3; c++) px[3 * (y * w + x) + c] = Math.max(0, Math.min(255, Math.round(rgb[c]! + noise() / 8)));
    }
  }
  const path = join(dir, 'street.png');
  await sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toFile(path);
  return { path, what: 'a synthetic 480x360 street' };
}

test("the README's Node example segments the sample and a 480x360 photo with the installed package", async (t) => {
  if (installSkip) return t.skip(installSkip);
  const example = markedBlock(README, 'example:node');
  assert.match(example.code, /from 'cts-seg'/);
  assert.match(example.code, /const r = /, 'the example names its result r (the check below prints r)');
  const report = `\n;{ const counts = {}; for (const c of r.classMap) counts[r.classes[c]] = (counts[r.classes[c]] ?? 0) + 1;\n` +
    `console.log('E2E ' + JSON.stringify({ width: r.width, height: r.height, length: r.classMap.length, counts, tokens: r.tokens, timings: r.timings })); }\n`;
  const photo = await streetPhoto(work);
  for (const [name, image, what] of [['sample', SAMPLE, 'web/public/sample.png'], ['photo', photo.path, photo.what]] as const) {
    // the example names its files model.safetensors and photo.png; give it exactly those
    const dir = join(app, `example-${name}`);
    mkdirSync(dir);
    copyFileSync(join(app, 'model.safetensors'), join(dir, 'model.safetensors'));
    copyFileSync(image, join(dir, 'photo.png'));
    writeFileSync(join(dir, 'example.mjs'), example.code + report);
    const t0 = performance.now();
    const out = mustRun(process.execPath, ['example.mjs'], dir);
    const line = out.split('\n').find((l) => l.startsWith('E2E '));
    assert.ok(line, `no result printed:\n${out}`);
    const r = JSON.parse(line.slice(4)) as { width: number; height: number; length: number; counts: Record<string, number>; tokens: Record<string, number>; timings: Record<string, number> };
    const meta = await sharp(image).metadata();
    assert.deepEqual([r.width, r.height], [meta.width, meta.height], 'the class map is at the image size');
    assert.equal(r.length, r.width * r.height);
    assert.equal(Object.values(r.counts).reduce((a, b) => a + b, 0), r.width * r.height);
    const counts = Object.entries(r.counts).sort((a, b) => b[1] - a[1]);
    t.diagnostic(`${what}: ${r.width}x${r.height}, ${counts.length} classes: ${counts.slice(0, 8).map(([c, n]) => `${c} ${n}`).join(', ')}${counts.length > 8 ? ', ...' : ''}`);
    t.diagnostic(`  first line of the example's output: ${out.split('\n')[0]}; tokens ${JSON.stringify(r.tokens)}; ${since(t0)} (total ${r.timings.total!.toFixed(0)} ms in segment)`);
  }
});

test('npx cts-seg --help runs the installed CLI', (t) => {
  if (installSkip) return t.skip(installSkip);
  const out = mustRun('npx', ['--offline', 'cts-seg', '--help'], app);
  assert.match(out, /Usage: cts-seg/);
  for (const cmd of ['init', 'export', 'infer']) assert.match(out, new RegExp(`\\b${cmd}\\b`));
});

test('a strict TypeScript user file type-checks against the installed types (nodenext)', (t) => {
  if (installSkip) return t.skip(installSkip);
  // the @ts-expect-error lines fail the check if the types resolve to `any`
  writeFileSync(join(app, 'user.ts'), `import { Segmenter, CtsError, type SegmentResult, type LoadOptions } from 'cts-seg';
const options: LoadOptions = { provider: ['cuda', 'cpu'], windowBatch: 2, onFallback: (m: string) => console.warn(m) };
const seg = await Segmenter.load('model.safetensors', options);
const r: SegmentResult = await seg.segment('photo.png', { mode: 'sliding', pictures: true });
const sameSize: boolean = r.classMap.length === r.width * r.height;
const first: string | undefined = r.classes[r.classMap[0]!];
const shared: number = r.tokens.shared + r.tokens.windows;
const ms: number = r.timings.inference;
const mask: Uint8Array | undefined = r.pictures?.mask.data;
console.log(sameSize, first, shared, ms, mask?.length, seg.info.window[0], seg.info.provider, r instanceof CtsError);
// @ts-expect-error: no such result field
console.log(r.classmap);
// @ts-expect-error: not a provider
await Segmenter.load('model.safetensors', { provider: 'tpu' });
await seg.dispose();
`);
  const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
  mustRun(process.execPath, [tsc, '--noEmit', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--strict', '--noUncheckedIndexedAccess', 'user.ts'], app);
});

const webSkip = chromiumSkip || (!existsSync(WEB_ENTRY) ? 'dist/src/web/index.js does not exist yet: the browser entry (src/web/index.ts, cts-seg/web) is not on this branch' : false);

test('a Vite app on cts-seg/web segments the sample in Chromium (wasm) exactly as Node does, on the same model file', { skip: webSkip, timeout: 300_000 }, async (t) => {
  if (installSkip) return t.skip(installSkip);
  let t0 = performance.now();
  mustRun('npx', ['--offline', 'cts-seg', 'export', '--checkpoint', 'model.safetensors', '--out', 'model.onnx'], app);
  // the Node reference; where the API returns probabilities, also the top-1 minus top-2 probability
  // per pixel, so that numerical near-ties between ORT's native and wasm kernels can be told apart
  writeFileSync(join(app, 'node-ref.mjs'), `import { Segmenter } from 'cts-seg';
import { writeFileSync } from 'node:fs';
const seg = await Segmenter.load('model.onnx');
const r = await seg.segment(process.argv[2], { probabilities: true });
writeFileSync('node-classmap.bin', r.classMap);
if (r.probabilities) {
  const n = r.width * r.height, k = r.classes.length, gap = new Float32Array(n);
  for (let p = 0; p < n; p++) {
    let a = -Infinity, b = -Infinity;
    for (let c = 0; c < k; c++) { const v = r.probabilities[c * n + p]; if (v > a) { b = a; a = v; } else if (v > b) b = v; }
    gap[p] = a - b;
  }
  writeFileSync('node-gap.bin', new Uint8Array(gap.buffer));
}
console.log(JSON.stringify({ width: r.width, height: r.height, provider: seg.info.provider }));
`);
  const ref = JSON.parse(mustRun(process.execPath, ['node-ref.mjs', SAMPLE], app).trim().split('\n').pop()!) as { width: number; height: number };
  const nodeMap = new Uint8Array(readFileSync(join(app, 'node-classmap.bin')));
  const gapFile = join(app, 'node-gap.bin');
  const gapBytes = existsSync(gapFile) ? readFileSync(gapFile) : undefined;
  const gap = gapBytes && new Float32Array(gapBytes.buffer, gapBytes.byteOffset, gapBytes.byteLength / 4);
  if (!gap) t.diagnostic('segment() returned no probabilities, so the class maps must be identical (no near-tie allowance)');
  t.diagnostic(`export + Node reference: ${since(t0)}`);

  t0 = performance.now();
  const dist = buildApp(join(app, 'webapp'), ROOT, join(app, 'model.onnx'), SAMPLE);
  t.diagnostic(`vite build: ${since(t0)}`);
  t0 = performance.now();
  const page = await runInChromium(dist, 240_000);
  t.diagnostic(`Chromium: ${since(t0)}`);
  const compare = (label: string, run: PageRun) => {
    assert.equal(run.state, 'done', `${label}: ${run.error ?? ''}\n${page.logs.join('\n')}`);
    assert.equal(run.provider, 'wasm', `${label} provider`);
    assert.deepEqual([run.width, run.height], [ref.width, ref.height], `${label} size`);
    const m = run.classMap!;
    assert.equal(m.length, nodeMap.length);
    let differ = 0, real = 0;
    for (let p = 0; p < m.length; p++) {
      if (m[p] === nodeMap[p]) continue;
      differ++;
      if (!gap || gap[p]! >= 1e-4) real++;
    }
    t.diagnostic(`${label}: ${m.length} pixels, ${differ} differ from Node, ${real} of them not near-ties (top-2 probability gap >= 1e-4, or unknown)`);
    assert.equal(real, 0, `${label}: ${real} pixels differ from Node where the classes are not tied`);
  };
  compare('main thread', page.main);
  compare('worker: true', page.worker);
});
