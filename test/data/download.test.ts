// downloadFile against a node:http server on 127.0.0.1: checksums, resume with Range, redirects, redaction.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { downloadFile, postForm, redact } from '../../src/data/download.js';
import { sendFile, serve, tempDir } from './synth.js';

const DATA = randomBytes(300_000);
const SHA1 = createHash('sha1').update(DATA).digest('hex');
const SHA256 = createHash('sha256').update(DATA).digest('hex');
const HALF = 120_000;

describe('downloadFile', () => {
  const t = tempDir();
  let server: Awaited<ReturnType<typeof serve>>;
  const drops = new Map<string, number>(); // path -> remaining responses to cut short
  before(async () => {
    server = await serve((req, res) => {
      const path = (req.url ?? '').split('?')[0]!;
      const drop = (drops.get(path) ?? 0) > 0;
      if (drop) drops.set(path, drops.get(path)! - 1);
      if (path === '/file.bin') return sendFile(req, res, DATA, drop ? { dropAfter: HALF } : {});
      if (path === '/norange.bin') return sendFile(req, res, DATA, { ignoreRange: true });
      if (path === '/r1') return res.writeHead(302, { location: '/r2' }).end();
      if (path === '/r2') return res.writeHead(301, { location: `${server.base}/file.bin` }).end();
      if (path.startsWith('/loop')) return res.writeHead(302, { location: `/loop${Number(path.slice(5) || 0) + 1}` }).end();
      res.writeHead(404, { 'content-type': 'text/plain' }).end('nope');
    });
  });
  after(async () => {
    await server.close();
    t.cleanup();
  });

  test('full download with sha1 and sha256, progress reported, no .part left', async () => {
    const dest = join(t.dir, 'full/file.bin');
    const progress: [number, number | undefined][] = [];
    const r = await downloadFile(`${server.base}/file.bin`, dest, { sha1: SHA1, sha256: SHA256.toUpperCase(), onProgress: (n, total) => progress.push([n, total]) });
    assert.ok(readFileSync(dest).equals(DATA));
    assert.deepEqual([r.fetched, r.sha1, r.sha256, r.bytes], [true, SHA1, SHA256, DATA.length]);
    assert.ok(!existsSync(`${dest}.part`));
    assert.deepEqual(progress.at(-1), [DATA.length, DATA.length]);
    assert.ok(progress.length > 1);
  });

  test('checksum mismatch: CtsError naming file and both digests, nothing left at dest', async () => {
    const dest = join(t.dir, 'bad.bin');
    const wrong = '0'.repeat(40);
    await assert.rejects(downloadFile(`${server.base}/file.bin`, dest, { sha1: wrong }), (e: Error) => {
      assert.equal(e.name, 'CtsError');
      for (const s of [dest, wrong, SHA1, 'checksum mismatch']) assert.ok(e.message.includes(s), `${e.message} lacks ${s}`);
      return true;
    });
    assert.ok(!existsSync(dest));
    assert.ok(!existsSync(`${dest}.part`));
  });

  test('an interrupted download resumes with a Range request on the next call', async () => {
    const dest = join(t.dir, 'resume.bin');
    drops.set('/file.bin', 1);
    const before = server.seen.length;
    await assert.rejects(downloadFile(`${server.base}/file.bin`, dest, { sha1: SHA1 }), /interrupted.*run again to resume/);
    assert.ok(!existsSync(dest));
    assert.equal(statSync(`${dest}.part`).size, HALF);
    const r = await downloadFile(`${server.base}/file.bin`, dest, { sha1: SHA1 });
    assert.ok(readFileSync(dest).equals(DATA));
    assert.equal(r.sha1, SHA1);
    const reqs = server.seen.slice(before);
    assert.equal(reqs.length, 2);
    assert.equal(reqs[0]!.headers.range, undefined);
    assert.equal(reqs[1]!.headers.range, `bytes=${HALF}-`);
  });

  test('retries resume within one call', async () => {
    const dest = join(t.dir, 'retry.bin');
    drops.set('/file.bin', 1);
    const before = server.seen.length;
    await downloadFile(`${server.base}/file.bin`, dest, { sha256: SHA256, retries: 1 });
    assert.ok(readFileSync(dest).equals(DATA));
    assert.deepEqual(server.seen.slice(before).map((r) => r.headers.range), [undefined, `bytes=${HALF}-`]);
  });

  test('a server that ignores Range (200) restarts the file', async () => {
    const dest = join(t.dir, 'norange.bin');
    writeFileSync(`${dest}.part`, Buffer.alloc(1000, 7)); // stale bytes that must not survive
    const r = await downloadFile(`${server.base}/norange.bin`, dest, { sha1: SHA1 });
    assert.equal(server.seen.at(-1)!.headers.range, 'bytes=1000-');
    assert.ok(readFileSync(dest).equals(DATA));
    assert.equal(r.bytes, DATA.length);
  });

  test('a file already present with the right checksum is not fetched again; a corrupt one is', async () => {
    const dest = join(t.dir, 'present.bin');
    await downloadFile(`${server.base}/file.bin`, dest, { sha1: SHA1 });
    const n = server.seen.length;
    const again = await downloadFile(`${server.base}/file.bin`, dest, { sha1: SHA1 });
    assert.equal(again.fetched, false);
    assert.equal(server.seen.length, n);
    writeFileSync(dest, 'corrupt');
    const fixed = await downloadFile(`${server.base}/file.bin`, dest, { sha1: SHA1 });
    assert.equal(fixed.fetched, true);
    assert.ok(readFileSync(dest).equals(DATA));
  });

  test('redirects are followed, but not more than 5', async () => {
    const dest = join(t.dir, 'redirected.bin');
    await downloadFile(`${server.base}/r1`, dest, { sha1: SHA1 });
    assert.ok(readFileSync(dest).equals(DATA));
    await assert.rejects(downloadFile(`${server.base}/loop0`, join(t.dir, 'loop.bin')), /too many redirects/);
    assert.ok(!existsSync(join(t.dir, 'loop.bin')));
  });

  test('HTTP errors name the URL; credentials never appear in messages', async () => {
    const user = 'alice.user', password = 'S3cr#t pass';
    const url = `http://${user}:${encodeURIComponent(password)}@127.0.0.1:${new URL(server.base).port}/missing?token=${encodeURIComponent(password)}`;
    await assert.rejects(downloadFile(url, join(t.dir, 'x.bin'), { secrets: [password, user], headers: { cookie: `sid=${password}` } }), (e: Error) => {
      assert.match(e.message, /HTTP 404/);
      assert.ok(e.message.includes('/missing'));
      assert.ok(!e.message.includes(user) && !e.message.includes(password) && !e.message.includes(encodeURIComponent(password)), e.message);
      return true;
    });
    await assert.rejects(downloadFile(`http://127.0.0.1:1/${password}`, join(t.dir, 'y.bin'), { secrets: [password] }), (e: Error) => {
      assert.match(e.message, /cannot reach/);
      assert.ok(!e.message.includes(password), e.message);
      return true;
    });
  });

  test('postForm sends a urlencoded body and does not follow the redirect', async () => {
    const r = await postForm(`${server.base}/r1`, { username: 'u', password: 'p w' });
    assert.equal(r.status, 302);
    const req = server.seen.at(-1)!;
    assert.equal(req.method, 'POST');
    assert.equal(req.body, 'username=u&password=p+w');
    assert.equal(req.headers['content-type'], 'application/x-www-form-urlencoded');
  });
});

test('redact removes raw and URL-encoded secrets and URL user-info', () => {
  assert.equal(redact('login alice with p@ss w0rd', ['p@ss w0rd', 'alice']), 'login *** with ***');
  assert.equal(redact('https://bob:pw@host/x?q=p%40ss%20w0rd', ['p@ss w0rd']), 'https://***@host/x?q=***');
  assert.equal(redact('form password=p%40ss+w0rd', ['p@ss w0rd']), 'form password=***');
  assert.equal(redact('nothing secret', ['']), 'nothing secret');
});
