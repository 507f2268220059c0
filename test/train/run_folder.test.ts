// The run-folder primitives on their own: the lock's owner checks, the log cut and the sweep.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { CtsError } from '../../src/base/errors.js';
import { cutLog, LOCK_FILE, RunLock, sweepTemporaries } from '../../src/train/run_folder.js';

const fresh = () => mkdtemp(join(tmpdir(), 'cts-run-folder-'));

/** The pid of a process that has already exited. */
function deadPid(): number {
  return Number(execFileSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }));
}

test('a held lock refuses a second owner, names the holder, and is gone after release', async () => {
  const dir = await fresh();
  const lock = await RunLock.acquire(dir, () => assert.fail('no message expected'));
  assert.deepEqual(JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8')), { pid: process.pid, host: hostname() });
  await assert.rejects(RunLock.acquire(dir, () => undefined), (e: Error) => e instanceof CtsError && e.message === `run folder ${dir} in use by pid ${process.pid} (host ${hostname()})`);
  lock.release();
  lock.release();
  assert.ok(!existsSync(join(dir, LOCK_FILE)));
});

test('a lock of a dead process on this host is taken over with a message; one from another host is not', async () => {
  const dir = await fresh();
  const pid = deadPid();
  await writeFile(join(dir, LOCK_FILE), JSON.stringify({ pid, host: hostname() }));
  const said: string[] = [];
  const lock = await RunLock.acquire(dir, (l) => said.push(l));
  assert.deepEqual(said, [`taking over the stale lock of ${dir}: pid ${pid} (host ${hostname()}) is no longer running`]);
  lock.release();
  await writeFile(join(dir, LOCK_FILE), JSON.stringify({ pid, host: 'elsewhere' }));
  await assert.rejects(RunLock.acquire(dir, () => undefined), /in use by pid \d+ \(host elsewhere\)/);
});

test('--out naming a file is one error line', async () => {
  const dir = await fresh();
  await writeFile(join(dir, 'f'), '');
  for (const p of [join(dir, 'f'), join(dir, 'f', 'g')]) await assert.rejects(RunLock.acquire(p, () => undefined), /is a file \(or lies under one\), not a folder/);
});

test('cutLog keeps the records up to the step and drops a torn last line', async () => {
  const dir = await fresh();
  const path = join(dir, 'log.jsonl');
  const lines = ['{"step":3,"loss":1}', '{"step":6,"loss":0.5}', '{"step":6,"eval":{"miou":0.1}}', '{"step":9,"loss":0.25}'];
  await writeFile(path, lines.join('\n') + '\n{"step":12,"lo');
  await cutLog(path, 9);
  assert.equal(await readFile(path, 'utf8'), lines.join('\n') + '\n');
  await cutLog(path, 7);
  assert.equal(await readFile(path, 'utf8'), lines.slice(0, 3).join('\n') + '\n');
  await cutLog(path, 0);
  assert.equal(await readFile(path, 'utf8'), '');
  await cutLog(join(dir, 'absent.jsonl'), 3); // a run that never logged
});

test('sweepTemporaries removes what writeFileAtomic leaves behind, and nothing else', async () => {
  const dir = await fresh();
  for (const n of ['model.safetensors.tmp-123-0a1b2c', 'config.json.tmp-9-ff', 'notes.tmp', 'log.jsonl']) await writeFile(join(dir, n), '');
  await sweepTemporaries(dir);
  assert.deepEqual((await readdir(dir)).sort(), ['log.jsonl', 'notes.tmp']);
});
