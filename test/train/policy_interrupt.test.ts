// Issue 16 for `train-policy`: killed, stopped by SIGINT, given an unreadable last checkpoint or a
// busy folder, a policy-network run still ends exactly as an uninterrupted one, log.jsonl included.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, truncate } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { generateSynthetic } from '../../src/data/synthetic.js';
import { readSafetensors } from '../../src/io/safetensors.node.js';
import { runCli } from '../helpers/cli.js';
import { hasStackFrame, logRecords, spawnCli, waitForStep, type Spawned } from '../helpers/training.js';

function args(data: string, out: string, seed = 0): string[] {
  return ['train-policy', '--dataset', 'folder', '--data-root', data, '--crop-size', '64', '--width', '0.25', '--batch-size', '2',
    '--iterations', '24', '--eval-every', '8', '--eval-limit', '2', '--log-every', '3', '--seed', String(seed), '--workers', '1', '--threads', '1', '--out', out];
}

async function finish(run: Spawned): Promise<void> {
  const e = await run.exit;
  assert.equal(e.code, 0, `exited with ${e.code ?? e.signal}: ${run.stderr()}`);
  assert.ok(!hasStackFrame(run.stderr()), run.stderr());
}

test('train-policy: SIGKILL, a busy folder, SIGINT and an unreadable last checkpoint, then resume: identical to an uninterrupted run', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cts-policy-interrupt-'));
  const data = join(dir, 'data');
  await generateSynthetic(data, { train: 6, val: 2, height: 64, width: 64, seed: 3 });
  const reference = join(dir, 'reference'), out = join(dir, 'run');
  const referenceDone = finish(spawnCli(args(data, reference)));

  // killed mid-window after the save at step 8: the resumed log must not repeat steps 9..
  let run = spawnCli(args(data, out));
  assert.ok((await waitForStep(run, out, 12)) > 0, run.stderr());
  run.child.kill('SIGKILL');
  assert.equal((await run.exit).signal, 'SIGKILL');

  run = spawnCli(args(data, out));
  assert.ok((await waitForStep(run, out, 9)) > 0, run.stderr());
  assert.match(run.stderr(), /taking over the stale lock/);
  const busy = await runCli(args(data, out, 1));
  assert.equal(busy.code, 1);
  assert.equal(busy.stderr, `cts-seg: error: run folder ${out} in use by pid ${run.child.pid} (host ${hostname()})\n`);
  await sleep(10);
  run.child.kill('SIGINT');
  assert.equal((await run.exit).code, 130, run.stderr());
  const m = /cts-seg: stopped by SIGINT after step (\d+); checkpoint: (\S+)/.exec(run.stderr());
  assert.ok(m, run.stderr());
  assert.ok(!hasStackFrame(run.stderr()), run.stderr());
  assert.equal((await readSafetensors(m[2]!)).metadata.step, m[1]);
  assert.ok(!existsSync(join(out, 'run.lock')));

  // the last checkpoint unreadable: fall back to policy_previous, say so, and still end identically
  await truncate(join(out, 'policy_last.safetensors'), 64);
  run = spawnCli(args(data, out));
  await finish(run);
  assert.match(run.stderr(), /checkpoint \S+policy_last.safetensors is unreadable \(.+\); falling back to \S+policy_previous.safetensors/);

  await referenceDone;
  for (const f of ['policy_last.safetensors', 'policy_best.safetensors']) {
    assert.ok((await readFile(join(out, f))).equals(await readFile(join(reference, f))), `${f} differs from the uninterrupted run`);
  }
  assert.deepEqual(await logRecords(out), await logRecords(reference));
});
