// `prepare` end to end against fake archives served from 127.0.0.1, plus archive extraction safety.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { create as tarCreate, Header } from 'tar';
import { extractArchive } from '../../src/data/archive.js';
import { openDataset } from '../../src/data/datasets.js';
import { prepareDataset } from '../../src/data/prepare.js';
import { greyBytes, rgbBytes, sendFile, serve, tempDir, zipBuffer } from './synth.js';

const sha1 = (b: Buffer) => createHash('sha1').update(b).digest('hex');
const W = 64, H = 48;

describe('prepare ade20k', () => {
  const t = tempDir();
  let server: Awaited<ReturnType<typeof serve>>;
  const files: Record<string, Buffer> = {};
  before(async () => {
    const root = 'ADEChallengeData2016';
    files['ADEChallengeData2016.zip'] = await zipBuffer([
      { name: `${root}/images/training/ADE_train_00000002.jpg`, data: await rgbBytes(W, H, true, 2) },
      { name: `${root}/images/training/ADE_train_00000001.jpg`, data: await rgbBytes(W, H, true, 1) },
      { name: `${root}/annotations/training/ADE_train_00000001.png`, data: await greyBytes(W, H, [0, 1, 150]) },
      { name: `${root}/annotations/training/ADE_train_00000002.png`, data: await greyBytes(W, H, [12]) },
      { name: `${root}/images/validation/ADE_val_00000001.jpg`, data: await rgbBytes(W, H, true, 3) },
      { name: `${root}/annotations/validation/ADE_val_00000001.png`, data: await greyBytes(W, H, [5]) },
      { name: `${root}/sceneCategories.txt`, data: Buffer.from('ADE_train_00000001 airport\n') },
    ]);
    files['release_test.zip'] = await zipBuffer([
      { name: 'release_test/testing/ADE_test_00000001.jpg', data: await rgbBytes(W, H, true, 4) },
      { name: 'release_test/list.txt', data: Buffer.from('ADE_test_00000001.jpg\n') },
    ]);
    server = await serve((req, res) => {
      const f = files[(req.url ?? '').slice(1)];
      if (f) sendFile(req, res, f);
      else res.writeHead(404).end();
    });
  });
  after(async () => {
    await server.close();
    t.cleanup();
  });
  const checksums = () => Object.fromEntries(Object.entries(files).map(([k, v]) => [k, sha1(v)]));

  test('downloads, verifies, extracts; openDataset reads the result; a re-run is a no-op', async () => {
    const log: string[] = [];
    const r = await prepareDataset('ade20k', t.dir, { urlBase: `${server.base}/`, checksums: checksums(), log: (l) => log.push(l) });
    assert.equal(r.dir, join(t.dir, 'ade20k'));
    assert.deepEqual(r.splits, { train: 2, val: 1, test: 1 });
    assert.ok(existsSync(join(t.dir, 'ade20k/downloads/ADEChallengeData2016.zip')));
    assert.ok(log.some((l) => l.includes('ready')));
    const ds = await openDataset('ade20k', r.dir, 'train');
    assert.deepEqual(ds.samples.map((s) => s.id), ['ADE_train_00000001', 'ADE_train_00000002']);
    assert.deepEqual([...(await ds.readLabel(0)).data.subarray(0, 3)], [255, 0, 149]);
    assert.equal((await openDataset('ade20k', t.dir, 'test')).samples[0]!.id, 'ADE_test_00000001');

    const n = server.seen.length;
    const again = await prepareDataset('ade20k', t.dir, { urlBase: server.base, checksums: checksums() });
    assert.equal(again.alreadyDone, true);
    assert.deepEqual(again.splits, r.splits);
    assert.equal(server.seen.length, n);
  });

  test('the official SHA-1 is checked by default: a different archive is refused and removed', async () => {
    const other = tempDir();
    try {
      await assert.rejects(prepareDataset('ade20k', other.dir, { urlBase: server.base }), (e: Error) => {
        assert.equal(e.name, 'CtsError');
        for (const s of ['ADEChallengeData2016.zip', '219e1696abb36c8ba3a3afe7fb2f4b4606a897c7', sha1(files['ADEChallengeData2016.zip']!)]) assert.ok(e.message.includes(s), e.message);
        return true;
      });
      assert.ok(!existsSync(join(other.dir, 'ade20k/downloads/ADEChallengeData2016.zip')));
      assert.ok(!existsSync(join(other.dir, 'ade20k/ADEChallengeData2016')));
    } finally {
      other.cleanup();
    }
  });
});

describe('prepare cityscapes', () => {
  const t = tempDir();
  const USER = 'alice_cs', PASS = 'pa$$ w0rd&x=1', SESSION = 'sess-0123456789abcdef';
  let server: Awaited<ReturnType<typeof serve>>;
  const pkgs: Record<string, Buffer> = {};
  let dropLeft = 0;
  const saved = { u: process.env.CITYSCAPES_USERNAME, p: process.env.CITYSCAPES_PASSWORD };
  before(async () => {
    delete process.env.CITYSCAPES_USERNAME;
    delete process.env.CITYSCAPES_PASSWORD;
    const frames = [['train', 'aachen', 'aachen_000001_000019'], ['train', 'aachen', 'aachen_000000_000019'], ['val', 'frankfurt', 'frankfurt_000000_000294']] as const;
    pkgs['1'] = await zipBuffer([
      { name: 'license.txt', data: Buffer.from('terms') },
      ...(await Promise.all(frames.flatMap(([split, city, base]) => [
        greyBytes(W, H, [7, 26, 0, 33, 255, 8]).then((data) => ({ name: `gtFine/${split}/${city}/${base}_gtFine_labelIds.png`, data })),
        Promise.resolve({ name: `gtFine/${split}/${city}/${base}_gtFine_polygons.json`, data: Buffer.from('{}') }),
      ]))),
    ]);
    pkgs['3'] = await zipBuffer(await Promise.all(frames.map(async ([split, city, base], i) => ({
      name: `leftImg8bit/${split}/${city}/${base}_leftImg8bit.png`, data: await rgbBytes(W, H, false, i),
    }))));
    server = await serve((req, res, body) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname === '/login/' && req.method === 'POST') {
        const form = new URLSearchParams(body);
        if (form.get('username') === USER && form.get('password') === PASS && form.get('submit') === 'Login') {
          return res.writeHead(302, { location: '/', 'set-cookie': [`sessionid=${SESSION}; Path=/; HttpOnly`, 'csrftoken=abc; Path=/'] }).end();
        }
        return res.writeHead(200, { 'content-type': 'text/html' }).end('<form>login</form>');
      }
      if (url.pathname === '/file-handling/') {
        if (!(req.headers.cookie ?? '').includes(`sessionid=${SESSION}`)) return res.writeHead(401).end();
        const id = url.searchParams.get('packageID') ?? '';
        const data = pkgs[id];
        if (!data) return res.writeHead(404).end();
        const drop = id === '3' && dropLeft > 0;
        if (drop) dropLeft--;
        return sendFile(req, res, data, drop ? { dropAfter: Math.floor(data.length / 2) } : {});
      }
      res.writeHead(404).end();
    });
  });
  after(async () => {
    await server.close();
    t.cleanup();
    if (saved.u !== undefined) process.env.CITYSCAPES_USERNAME = saved.u;
    if (saved.p !== undefined) process.env.CITYSCAPES_PASSWORD = saved.p;
  });

  const log: string[] = [];
  const noSecrets = (text: string) => {
    for (const s of [PASS, USER, encodeURIComponent(PASS), SESSION]) assert.ok(!text.includes(s), `'${text}' leaks '${s}'`);
  };

  test('no credentials: the error says how to give them', async () => {
    await assert.rejects(prepareDataset('cityscapes', t.dir, { urlBase: server.base }), /--username and --password or set CITYSCAPES_USERNAME and CITYSCAPES_PASSWORD/);
  });

  test('a wrong password fails the login without printing credentials', async () => {
    await assert.rejects(prepareDataset('cityscapes', t.dir, { urlBase: server.base, username: USER, password: 'wrong' + PASS, log: (l) => log.push(l) }), (e: Error) => {
      assert.match(e.message, /login .* failed \(HTTP 200/);
      noSecrets(e.message);
      return true;
    });
  });

  test('interrupted download, then resumed run: trainIds, lists, openDataset; credentials never logged', async () => {
    dropLeft = 1;
    await assert.rejects(prepareDataset('cityscapes', t.dir, { urlBase: server.base, username: USER, password: PASS, retries: 0, log: (l) => log.push(l) }), (e: Error) => {
      assert.match(e.message, /interrupted/);
      noSecrets(e.message);
      return true;
    });
    const downloads = join(t.dir, 'cityscapes/downloads');
    assert.ok(existsSync(join(downloads, 'gtFine_trainvaltest.zip')));
    assert.ok(existsSync(join(downloads, 'leftImg8bit_trainvaltest.zip.part')));
    assert.ok(!existsSync(join(downloads, 'leftImg8bit_trainvaltest.zip')));

    process.env.CITYSCAPES_USERNAME = USER;
    process.env.CITYSCAPES_PASSWORD = PASS;
    const n = server.seen.length;
    const r = await prepareDataset('cityscapes', t.dir, { urlBase: server.base, log: (l) => log.push(l) });
    const reqs = server.seen.slice(n);
    assert.deepEqual(reqs.map((q) => `${q.method} ${q.url}`), ['POST /login/', 'GET /file-handling/?packageID=3']);
    assert.match(reqs[1]!.headers.range ?? '', /^bytes=\d+-$/);
    assert.deepEqual(r.splits, { train: 2, val: 1 });
    assert.equal(readFileSync(join(r.dir, 'train.txt'), 'utf8'), 'aachen/aachen_000000_000019\naachen/aachen_000001_000019\n');
    assert.equal(readFileSync(join(r.dir, 'val.txt'), 'utf8'), 'frankfurt/frankfurt_000000_000294\n');
    const ds = await openDataset('cityscapes', t.dir, 'train');
    assert.deepEqual(ds.samples.map((s) => s.id), ['aachen/aachen_000000_000019', 'aachen/aachen_000001_000019']);
    // labelIds 7, 26, 0, 33, 255, 8 -> trainIds 0, 13, 255, 18, 255, 1
    assert.deepEqual([...(await ds.readLabel(1)).data.subarray(0, 6)], [0, 13, 255, 18, 255, 1]);
    for (const l of log) noSecrets(l);
    for (const q of server.seen) noSecrets(q.url);

    const m = server.seen.length;
    assert.equal((await prepareDataset('cityscapes', t.dir, {})).alreadyDone, true);
    assert.equal(server.seen.length, m);
  });

  test('the CLI exits 1 with one line and no credentials on a failed login', async () => {
    const main = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
    const fresh = tempDir();
    try {
      const r = await promisify(execFile)(process.execPath, [main, 'prepare', 'cityscapes', fresh.dir, '--url-base', server.base, '--username', USER, '--password', 'bad' + PASS], { env: { ...process.env, CITYSCAPES_USERNAME: '', CITYSCAPES_PASSWORD: '' } })
        .then(() => ({ code: 0, out: '' }), (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }));
      assert.equal(r.code, 1, r.out);
      assert.match(r.out, /cts-seg: error: Cityscapes login/);
      assert.ok(!r.out.includes('bad' + PASS) && !r.out.includes(USER), r.out);
    } finally {
      fresh.cleanup();
    }
  });
});

describe('prepare pcontext', () => {
  const t = tempDir();
  let server: Awaited<ReturnType<typeof serve>>;
  const files: Record<string, Buffer> = {};
  // Stand-in for the .pth pickles: JSON {id: [w, h, value]} read by an injected reader, so this test covers
  // download/extract/write/list logic; the real pickle reader has its own tests (src/data/pcontext.ts).
  const readJsonPth = async (path: string) => {
    const obj = JSON.parse(readFileSync(path, 'utf8')) as Record<string, [number, number, number]>;
    return new Map(Object.entries(obj).map(([id, [w, h, v]]) => [id, { width: w, height: h, data: new Uint8Array(w * h).fill(v) }]));
  };
  before(async () => {
    const src = join(t.dir, 'src/VOCdevkit/VOC2010');
    mkdirSync(join(src, 'JPEGImages'), { recursive: true });
    mkdirSync(join(src, 'ImageSets/Segmentation'), { recursive: true });
    for (const [i, id] of ['2008_000008', '2008_000002', '2010_000001'].entries()) writeFileSync(join(src, 'JPEGImages', `${id}.jpg`), await rgbBytes(W, H, true, i));
    writeFileSync(join(src, 'ImageSets/Segmentation/train.txt'), '2008_000002\n');
    await tarCreate({ file: join(t.dir, 'voc.tar'), cwd: join(t.dir, 'src') }, ['VOCdevkit']);
    files['VOCtrainval_03-May-2010.tar'] = readFileSync(join(t.dir, 'voc.tar'));
    files['train.pth'] = Buffer.from(JSON.stringify({ '2008_000008': [W, H, 59], '2008_000002': [W, H, 0] }));
    files['val.pth'] = Buffer.from(JSON.stringify({ '2010_000001': [W, H, 255] }));
    server = await serve((req, res) => {
      const f = files[(req.url ?? '').slice(1)];
      if (f) sendFile(req, res, f);
      else res.writeHead(404).end(); // trainval_merged.json: gone, and unused
    });
  });
  after(async () => {
    await server.close();
    t.cleanup();
  });

  test('tar extracted, labels written from the .pth reader, sorted split lists; the unused json may fail', async () => {
    const log: string[] = [];
    const checksums = Object.fromEntries(Object.entries(files).map(([k, v]) => [k, sha1(v)]));
    const root = join(t.dir, 'data');
    const r = await prepareDataset('pcontext', root, { urlBase: server.base, checksums, readPth: readJsonPth, log: (l) => log.push(l) });
    assert.deepEqual(r.splits, { train: 2, val: 1 });
    assert.ok(log.some((l) => /warning: skipping trainval_merged\.json/.test(l)), log.join('\n'));
    const voc = join(root, 'pcontext/VOCdevkit/VOC2010');
    assert.equal(readFileSync(join(voc, 'ImageSets/SegmentationContext/train.txt'), 'utf8'), '2008_000002\n2008_000008\n');
    assert.equal(readFileSync(join(voc, 'ImageSets/SegmentationContext/val.txt'), 'utf8'), '2010_000001\n');
    const ds = await openDataset('pcontext', root, 'train');
    assert.deepEqual(ds.samples.map((s) => s.id), ['2008_000002', '2008_000008']);
    assert.equal((await ds.readLabel(1)).data[0], 59);
    assert.equal((await ds.readLabel(0)).data[0], 0);
    assert.equal((await (await openDataset('pcontext', root, 'val')).readLabel(0)).data[0], 255);
  });

  test('end to end with the real .pth reader on a legacy torch.save pickle of PIL images', async () => {
    const ids = { 2008000008: [59, 3], 2008000002: [0, 255], 2010000001: [12] } as Record<number, number[]>;
    const pth = (keys: number[]) => legacyPth(keys.map((k) => [k, W, H, ids[k]!]));
    const real: Record<string, Buffer> = { ...files, 'train.pth': pth([2008000008, 2008000002]), 'val.pth': pth([2010000001]) };
    const server2 = await serve((req, res) => {
      const f = real[(req.url ?? '').slice(1)];
      if (f) sendFile(req, res, f);
      else res.writeHead(404).end();
    });
    try {
      const checksums = Object.fromEntries(Object.entries(real).map(([k, v]) => [k, sha1(v)]));
      const root = join(t.dir, 'real');
      const r = await prepareDataset('pcontext', root, { urlBase: server2.base, checksums });
      assert.deepEqual(r.splits, { train: 2, val: 1 });
      const ds = await openDataset('pcontext', root, 'train');
      assert.deepEqual(ds.samples.map((s) => s.id), ['2008_000002', '2008_000008']);
      assert.deepEqual([...(await ds.readLabel(0)).data.subarray(0, 3)], [0, 255, 0]);
      assert.deepEqual([...(await ds.readLabel(1)).data.subarray(0, 3)], [59, 3, 59]);
    } finally {
      await server2.close();
    }
  });
});

describe('extractArchive', () => {
  const t = tempDir();
  after(t.cleanup);

  test('tar.gz and tar round trip', async () => {
    const src = join(t.dir, 'src');
    mkdirSync(join(src, 'a/b'), { recursive: true });
    writeFileSync(join(src, 'a/b/c.txt'), 'hello');
    writeFileSync(join(src, 'a/d.bin'), Buffer.from([0, 1, 2, 255]));
    for (const [name, gzip] of [['x.tar.gz', true], ['x.tar', false]] as const) {
      await tarCreate({ gzip, file: join(t.dir, name), cwd: src }, ['a']);
      const out = join(t.dir, `out-${name}`);
      let last: [number, number] | undefined;
      await extractArchive(join(t.dir, name), out, { onProgress: (d, tot) => (last = [d, tot]) });
      assert.equal(readFileSync(join(out, 'a/b/c.txt'), 'utf8'), 'hello');
      assert.deepEqual([...readFileSync(join(out, 'a/d.bin'))], [0, 1, 2, 255]);
      assert.ok(last && last[0] === last[1]);
    }
  });

  test('a tar entry escaping the target is refused', async () => {
    const evil = join(t.dir, 'evil.tar');
    const body = Buffer.from('pwned');
    const hdr = Buffer.alloc(512);
    new Header({ path: '../escaped.txt', mode: 0o644, size: body.length, type: 'File', mtime: new Date(0), uid: 0, gid: 0 }).encode(hdr, 0);
    const pad = Buffer.alloc(512 - body.length);
    writeFileSync(evil, Buffer.concat([hdr, body, pad, Buffer.alloc(1024)]));
    const out = join(t.dir, 'evil-out');
    await assert.rejects(extractArchive(evil, out), /'\.\.\/escaped\.txt'.*outside/);
    assert.ok(!existsSync(join(t.dir, 'escaped.txt')));
  });

  test('a zip entry escaping the target is refused; unknown formats are named', async () => {
    const zip = await zipBuffer([{ name: 'zz/escaped.txt', data: Buffer.from('pwned') }]);
    const patched = Buffer.from(zip.toString('latin1').split('zz/escaped.txt').join('../escaped.txt'), 'latin1');
    const evil = join(t.dir, 'evil.zip');
    writeFileSync(evil, patched);
    await assert.rejects(extractArchive(evil, join(t.dir, 'zip-out')), /outside/);
    assert.ok(!existsSync(join(t.dir, 'escaped.txt')));
    await assert.rejects(extractArchive(join(t.dir, 'file.rar'), join(t.dir, 'o')), /expected a \.tar, \.tar\.gz, \.tgz or \.zip/);
  });
});

test('prepare refuses datasets it cannot fetch', async () => {
  await assert.rejects(prepareDataset('camvid', '/tmp'), /cannot prepare 'camvid'/);
});

/**
 * A legacy (torch < 1.6) torch.save file of {int id: PIL 'L' image}, as PyTorch-Encoding's train.pth/val.pth:
 * pickles of the magic number, protocol 1001, sys_info, the dict, and an empty storage-key list.
 * Each image's pixels cycle through its values.
 */
function legacyPth(entries: [number, number, number, number[]][]): Buffer {
  const parts: Buffer[] = [];
  const op = (...b: number[]) => parts.push(Buffer.from(b));
  const str = (s: string) => {
    op(0x8c, Buffer.byteLength(s));
    parts.push(Buffer.from(s));
  };
  const int32 = (v: number) => {
    const b = Buffer.alloc(5);
    b[0] = 0x4a;
    b.writeInt32LE(v, 1);
    parts.push(b);
  };
  op(0x80, 3, 0x8a, 10, ...Buffer.from('6cfc9c46f9206aa85019', 'hex'), 0x2e); // magic 0x1950a86a20f9469cfc6c
  op(0x80, 3, 0x4d, 0xe9, 0x03, 0x2e); // 1001
  op(0x80, 3, 0x7d, 0x28);
  str('protocol_version');
  op(0x4d, 0xe9, 0x03);
  str('little_endian');
  op(0x88);
  str('type_sizes');
  op(0x7d, 0x75, 0x2e);
  op(0x80, 3, 0x7d, 0x28);
  for (const [id, w, h, values] of entries) {
    int32(id);
    parts.push(Buffer.from('cPIL.Image\nImage\n', 'latin1'));
    op(0x29, 0x81, 0x5d, 0x28, 0x7d);
    str('L');
    op(0x4b, w, 0x4b, h, 0x86, 0x4e);
    const px = Buffer.alloc(w * h);
    for (let i = 0; i < px.length; i++) px[i] = values[i % values.length]!;
    const len = Buffer.alloc(5);
    len[0] = 0x42;
    len.writeUInt32LE(px.length, 1);
    parts.push(len, px);
    op(0x65, 0x62);
  }
  op(0x75, 0x2e);
  op(0x80, 3, 0x5d, 0x2e);
  return Buffer.concat(parts);
}
