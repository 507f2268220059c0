// pull / resolveModel against a local server on 127.0.0.1 serving the official run fixture: the cache
// and its index, resume after a cut connection, 404, truncated files, offline mode, corrupted caches.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadCheckpoint } from '../../src/cts/checkpoint.node.js';
import { CAMVID_CLASSES } from '../../src/data/classes.js';
import { cacheDir, isOffline, readIndex } from '../../src/zoo/cache.node.js';
import { listModels, pull, resolveModel, type PullOptions } from '../../src/zoo/pull.node.js';
import { MODELS } from '../../src/zoo/registry.js';
import { tempDir } from '../data/synth.js';
import { RUN, runFiles, standInConvert, testRecords } from './fixture.js';
import { zooServer } from './server.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('pull', { skip: RUN ? false : 'needs ../shared/reference/official-run' }, () => {
  const t = tempDir('cts-zoo-');
  let server: Awaited<ReturnType<typeof zooServer>>;
  let conversions = 0;
  let n = 0;
  const opts = (o: PullOptions = {}): PullOptions => ({
    cache: join(t.dir, `cache${n}`), base: server.base, offline: false, retries: 0, models: [...MODELS, ...testRecords()],
    convert: async (dir) => {
      conversions++;
      return standInConvert(dir);
    },
    ...o,
  });
  before(async () => {
    server = await zooServer();
  });
  after(async () => {
    await server.close();
    t.cleanup();
  });

  test('downloads, records sizes and sha256, converts once, then reuses the cache', async () => {
    n++;
    const o = opts();
    const before = conversions;
    const r = await pull('test_ok_camvid', o);
    assert.deepEqual([r.downloaded, r.converted, conversions - before], [true, true, 1]);
    assert.equal(r.path, join(o.cache!, 'test_ok_camvid', 'model.safetensors'));
    const files = runFiles();
    for (const [f, data] of Object.entries(files)) assert.ok(readFileSync(join(o.cache!, 'test_ok_camvid/files', f)).equals(data));
    const e = (await readIndex(o.cache!)).models.test_ok_camvid!;
    assert.deepEqual(e.files.map((f) => [f.path, f.size, f.sha256]), Object.entries(files).map(([f, d]) => [`files/${f}`, d.length, sha(d)]));
    assert.equal(e.model?.path, 'model.safetensors');
    const ckpt = await loadCheckpoint(r.path);
    assert.deepEqual(ckpt.classes, [...CAMVID_CLASSES]); // names from the catalog dataset of the record
    assert.equal(ckpt.dataset, 'camvid');
    const seen = server.seen.length;
    const again = await pull('test_ok_camvid', o);
    assert.deepEqual([again.downloaded, again.converted, conversions - before, server.seen.length], [false, false, 1, seen]);
    assert.equal(await resolveModel('TEST-OK-CAMVID', o), r.path);
    const listed = (await listModels(o)).find((l) => l.record.name === 'test_ok_camvid');
    assert.equal(listed?.cached, true);
  });

  test('a cut connection resumes with a Range request and gives the identical file', async () => {
    n++;
    server.cutOnce.add('checkpoint.pth');
    const o = opts();
    const first = server.seen.length;
    await assert.rejects(pull('test_flaky_camvid', o), /interrupted.*run again to resume/);
    assert.ok(existsSync(join(o.cache!, 'test_flaky_camvid/files/checkpoint.pth.part')));
    assert.equal((await readIndex(o.cache!)).models.test_flaky_camvid, undefined);
    await pull('test_flaky_camvid', o);
    const reqs = server.seen.slice(first).filter((s) => s.url.endsWith('checkpoint.pth'));
    assert.equal(reqs.length, 2);
    assert.equal(reqs[0]!.headers.range, undefined);
    assert.equal(reqs[1]!.headers.range, 'bytes=1000-');
    assert.ok(readFileSync(join(o.cache!, 'test_flaky_camvid/files/checkpoint.pth')).equals(runFiles()['checkpoint.pth']!));
  });

  test('404: one clear error and nothing left for the model (not even the cache folder it created)', async () => {
    n++;
    const o = opts();
    await assert.rejects(pull('test_missing_camvid', o), (e: Error) => {
      assert.equal(e.name, 'CtsError');
      assert.match(e.message, /HTTP 404/);
      assert.ok(!e.message.includes('\n'));
      return true;
    });
    assert.ok(!existsSync(o.cache!));
    await pull('test_ok_camvid', o);
    await assert.rejects(pull('test_missing_camvid', o), /HTTP 404/);
    assert.deepEqual(readdirSync(o.cache!).sort(), ['index.json', 'test_ok_camvid']);
  });

  test('a body shorter than Content-Length is refused and not recorded', async () => {
    n++;
    const o = opts({ retries: 1 });
    await assert.rejects(pull('test_cut_camvid', o), /interrupted/);
    assert.equal((await readIndex(o.cache!)).models.test_cut_camvid, undefined);
    assert.ok(!existsSync(join(o.cache!, 'test_cut_camvid/files/checkpoint.pth')));
    assert.ok(!existsSync(join(o.cache!, 'test_cut_camvid/model.safetensors')));
  });

  test('a complete body shorter than the recorded size is refused, removed and not recorded', async () => {
    n++;
    const o = opts();
    await assert.rejects(pull('test_short_camvid', o), /gave \d+ bytes, the registry records \d+/);
    assert.ok(!existsSync(join(o.cache!, 'test_short_camvid')));
    assert.equal((await readIndex(o.cache!)).models.test_short_camvid, undefined);
  });

  test('offline: a cached model is used without a request, a missing one is one clear error', async () => {
    n++;
    const o = opts();
    await pull('test_ok_camvid', o);
    const seen = server.seen.length;
    const r = await pull('test_ok_camvid', { ...o, offline: true, base: 'http://127.0.0.1:9/' });
    assert.equal(r.downloaded, false);
    assert.equal(server.seen.length, seen);
    await assert.rejects(pull('test_flaky_camvid', { ...o, offline: true }), /not in the cache .* CTS_SEG_OFFLINE forbids downloading/);
    await assert.rejects(resolveModel('test_flaky_camvid', { ...o, offline: true }), /CTS_SEG_OFFLINE/);
    assert.equal(server.seen.length, seen);
    assert.ok(!existsSync(join(o.cache!, 'test_flaky_camvid')));
  });

  test('a flipped byte in a cached file is caught by the sha256 check; --force repairs it', async () => {
    n++;
    const o = opts();
    await pull('test_ok_camvid', o);
    for (const f of ['files/checkpoint.pth', 'model.safetensors']) {
      const path = join(o.cache!, 'test_ok_camvid', f);
      const good = readFileSync(path);
      const bad = Buffer.from(good);
      bad[bad.length >> 1]! ^= 0x01;
      writeFileSync(path, bad);
      await assert.rejects(resolveModel('test_ok_camvid', o), (e: Error) => {
        for (const s of [path, sha(good), sha(bad), 'pull test_ok_camvid --force']) assert.ok(e.message.includes(s), `${e.message} lacks ${s}`);
        return true;
      });
      const r = await pull('test_ok_camvid', { ...o, force: true });
      assert.equal(r.downloaded, true);
      await resolveModel('test_ok_camvid', o);
    }
  });

  test('the default converter is the importer of official runs: configuration and weights of the run', async () => {
    n++;
    const o = opts();
    delete o.convert;
    const r = await pull('test_ok_camvid', o);
    assert.equal(r.converted, true);
    const ckpt = await loadCheckpoint(r.path);
    const ref = await loadCheckpoint(join(RUN!, 'expected/state_dict.safetensors'), { encoderHeads: 2 });
    assert.deepEqual([ckpt.config.d_model, ckpt.config.n_heads, ckpt.config.n_layers, ckpt.config.n_cls, ckpt.dataset, ckpt.window], [64, 2, 2, 11, 'camvid', { size: 96, stride: 64 }]);
    for (const [k, t] of ref.weights) assert.deepEqual(ckpt.weights.get(k)?.data, t.data, k);
  });

  test('resolveModel: paths as they are, backbones and unknown names refused', async () => {
    const o = opts();
    const p = join(RUN!, 'expected/state_dict.safetensors');
    assert.equal(await resolveModel(p, o), p);
    await assert.rejects(resolveModel('nope/model.safetensors', o), /no such file/);
    await assert.rejects(resolveModel('vit_small_patch16_384', o), /ImageNet backbone.*--pretrained/);
    await assert.rejects(resolveModel('seg_tiny_mask', o), /unknown model 'seg_tiny_mask'; did you mean seg_tiny_mask_ade20k/);
  });
});

describe('cache settings', () => {
  test('CTS_SEG_CACHE, then XDG_CACHE_HOME, then ~/.cache', () => {
    assert.equal(cacheDir({ CTS_SEG_CACHE: '/c', XDG_CACHE_HOME: '/x' }), '/c');
    assert.equal(cacheDir({ XDG_CACHE_HOME: '/x' }), '/x/cts-seg');
    assert.match(cacheDir({ XDG_CACHE_HOME: 'relative' }), /\.cache\/cts-seg$/);
  });
  test('CTS_SEG_OFFLINE', () => {
    assert.equal(isOffline({ CTS_SEG_OFFLINE: '1' }), true);
    assert.equal(isOffline({ CTS_SEG_OFFLINE: '0' }), false);
    assert.equal(isOffline({}), false);
  });
});
