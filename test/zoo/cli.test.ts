// `cts-seg pull` and `cts-seg models` as processes: the real entry for listing and failures, and the
// same commands registered with the test records and the stand-in conversion for the download path.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MODELS } from '../../src/zoo/registry.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../data/synth.js';
import { RUN } from './fixture.js';
import { zooServer } from './server.js';

const ENTRY = fileURLToPath(new URL('./cli-entry.js', import.meta.url));

/** Runs the test entry with extra env; resolves with exit code and output. */
function runEntry(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [ENTRY, ...args], { env: { ...process.env, CI: 'true', ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** Exit 1 with exactly one `cts-seg: error:` line and no stack trace. */
function assertOneError(r: { code: number; stderr: string }, pattern: RegExp): void {
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('cts-seg: error:'));
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, pattern);
  assert.ok(!/\n\s+at /.test(r.stderr), `stack trace in ${r.stderr}`);
}

describe('cts-seg models / pull (main entry)', () => {
  const t = tempDir('cts-zoo-cli-');
  const saved = { cache: process.env.CTS_SEG_CACHE, offline: process.env.CTS_SEG_OFFLINE };
  before(() => {
    process.env.CTS_SEG_CACHE = join(t.dir, 'cache'); // runCli's child inherits it
  });
  after(() => {
    for (const [k, v] of [['CTS_SEG_CACHE', saved.cache], ['CTS_SEG_OFFLINE', saved.offline]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    t.cleanup();
  });

  test('models lists every registry name with its mIoU and cache state', async () => {
    const r = await runCli(['models']);
    assert.equal(r.code, 0, r.stderr);
    for (const m of MODELS) assert.match(r.stdout, new RegExp(`^${m.name}\\s.*\\s(yes|no)$`, 'm'));
    assert.match(r.stdout, /seg_tiny_mask_ade20k\s+Seg-T-Mask\/16\s+ade20k\s+38\.1 \/ 38\.8/);
    assert.ok(r.stdout.includes(join(t.dir, 'cache')));
  });

  test('an unknown name is one line with close matches', async () => {
    assertOneError(await runCli(['pull', 'seg_small_mask']), /unknown model 'seg_small_mask'; did you mean seg_small_mask_ade20k/);
  });

  test('offline without the model: one line, no network, nothing created', async () => {
    process.env.CTS_SEG_OFFLINE = '1';
    try {
      assertOneError(await runCli(['pull', 'seg_tiny_mask_ade20k']), /not in the cache .*CTS_SEG_OFFLINE/);
    } finally {
      delete process.env.CTS_SEG_OFFLINE;
    }
    assert.ok(!existsSync(join(t.dir, 'cache')));
  });
});

describe('cts-seg pull (local server)', { skip: RUN ? false : 'needs ../shared/reference/official-run' }, () => {
  const t = tempDir('cts-zoo-cli-');
  let server: Awaited<ReturnType<typeof zooServer>>;
  let env: Record<string, string>;
  before(async () => {
    server = await zooServer();
    env = { CTS_SEG_CACHE: join(t.dir, 'cache'), CTS_SEG_MODEL_BASE: server.base, CTS_SEG_OFFLINE: '' };
  });
  after(async () => {
    await server.close();
    t.cleanup();
  });

  test('pull prints the checkpoint path; again it comes from the cache; models shows it cached', async () => {
    const model = join(t.dir, 'cache/test_ok_camvid/model.safetensors');
    const r = await runEntry(['pull', 'test_ok_camvid'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${model}\n`);
    assert.match(r.stderr, /converted test_ok_camvid/);
    assert.ok(existsSync(model));
    const again = await runEntry(['pull', 'test_ok_camvid'], { ...env, CTS_SEG_OFFLINE: '1' });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /is in the cache/);
    const list = await runEntry(['models'], env);
    assert.match(list.stdout, /^test_ok_camvid\s.*\syes$/m);
    assert.match(list.stdout, /^test_missing_camvid\s.*\sno$/m);
  });

  test('404 is one line and leaves no folder', async () => {
    assertOneError(await runEntry(['pull', 'test_missing_camvid'], env), /HTTP 404/);
    assert.ok(!existsSync(join(t.dir, 'cache/test_missing_camvid')));
  });

  test('a corrupted cache is one line naming both digests; pull --force repairs it', async () => {
    const path = join(t.dir, 'cache/test_ok_camvid/files/variant.yml');
    writeFileSync(path, readFileSync(path, 'utf8').replace('camvid', 'camvie'));
    assertOneError(await runEntry(['pull', 'test_ok_camvid'], env), /has changed since it was downloaded: sha256 [0-9a-f]{64} .*recorded [0-9a-f]{64}.*--force/);
    const r = await runEntry(['pull', 'test_ok_camvid', '--force'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(readFileSync(path, 'utf8'), /dataset: camvid/);
  });
});
