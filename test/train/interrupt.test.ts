// Issue 16, training runs: nothing lost, nothing crashes. A tiny run killed with SIGKILL at 20
// seeded points and resumed each time ends byte-identical to an uninterrupted run, log included;
// SIGINT/SIGTERM leave a loadable checkpoint of the last completed step; a second run into a busy
// folder is refused and the first carries on as if alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, truncate, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { generateSynthetic } from '../../src/data/synthetic.js';
import { loadRunCheckpoint } from '../../src/train/checkpoints.js';
import { runCli } from '../helpers/cli.js';
import { hasStackFrame, logRecords, seededRandom, spawnCli, waitForStep, type Spawned } from '../helpers/training.js';

const N = 60;
const dir = await mkdtemp(join(tmpdir(), 'cts-interrupt-'));
const data = join(dir, 'data');
await generateSynthetic(data, { train: 6, val: 2, height: 64, width: 64, seed: 3 });

// checkpoints every 4 steps and log lines every 3: kills fall inside logging windows that straddle checkpoints
function args(out: string, seed = 0): string[] {
  return ['train', '--dataset', 'folder', '--data-root', data, '--backbone', 'custom', '--model', 'd_model=32,n_layers=2,n_heads=2',
    '--crop-size', '64', '--batch-size', '2', '--iterations', String(N), '--policy-method', 'random', '--num-tokens-shared', '1',
    '--checkpoint-every', '4', '--log-every', '3', '--eval-every', '10', '--eval-limit', '2', '--seed', String(seed),
    '--workers', '1', '--threads', '1', '--out-dir', out];
}

async function finish(run: Spawned, what: string): Promise<void> {
  const e = await run.exit;
  assert.equal(e.code, 0, `${what} exited with ${e.code ?? e.signal}: ${run.stderr()}`);
  assert.ok(!hasStackFrame(run.stderr()), run.stderr());
}

// the uninterrupted reference trains while the interrupted runs do
const reference = join(dir, 'reference');
const referenceDone = finish(spawnCli(args(reference)), 'the reference run');

/** Asserts that `out` ended exactly as the reference: every weight, optimizer state and log record. */
async function assertSameAsReference(out: string): Promise<void> {
  await referenceDone;
  const last = join('checkpoints', `step-${String(N).padStart(8, '0')}`);
  for (const f of ['model.safetensors', 'best.safetensors', join(last, 'model.safetensors'), join(last, 'optimizer.safetensors')]) {
    assert.ok((await readFile(join(out, f))).equals(await readFile(join(reference, f))), `${f} differs from the uninterrupted run`);
  }
  assert.deepEqual(await logRecords(out), await logRecords(reference));
  assert.ok(!existsSync(join(out, 'run.lock')), 'the lock is removed at the end');
}

async function lastCheckpointStep(out: string): Promise<number> {
  const names = existsSync(join(out, 'checkpoints')) ? await readdir(join(out, 'checkpoints')) : [];
  return Math.max(0, ...names.filter((n) => n.startsWith('step-')).map((n) => Number(n.slice(5))));
}

test('SIGKILL at 20 seeded points, resumed each time: weights and log.jsonl equal an uninterrupted run', async () => {
  const out = join(dir, 'killed');
  const rnd = seededRandom(16);
  const targets = Array.from({ length: 15 }, () => 1 + Math.floor(rnd() * (N - 6))).sort((a, b) => a - b);
  for (let i = 0, t = 0; i < 20; i++) {
    const run = spawnCli(args(out));
    if (i % 4 === 1) {
      await sleep(rnd() * 1000); // wall time: start-up, lock take-over, sweeping, cutting the log, early steps
    } else {
      const seen = await waitForStep(run, out, Math.max(targets[t++]!, (await lastCheckpointStep(out)) + 1));
      assert.ok(seen > 0, `run ${i} ended before its kill: ${run.stderr()}`);
      await sleep(rnd() * 15); // anywhere inside the following steps, checkpoint writes included
    }
    run.child.kill('SIGKILL');
    assert.equal((await run.exit).signal, 'SIGKILL', `run ${i} was killed, not finished`);
    assert.ok(!hasStackFrame(run.stderr()), run.stderr());
  }
  // temporaries of writes that a kill cut short, in every folder the run writes
  await writeFile(join(out, 'model.safetensors.tmp-99999-abcdef'), 'x');
  await mkdir(join(out, 'checkpoints', '.tmp-step-99-99999'), { recursive: true });
  const final = spawnCli(args(out));
  await finish(final, 'the resumed run');
  assert.match(final.stderr(), /taking over the stale lock of .*: pid \d+ \(host .+\) is no longer running/);
  assert.deepEqual((await readdir(out)).filter((n) => n.includes('.tmp-')), []);
  assert.deepEqual((await readdir(join(out, 'checkpoints'))).filter((n) => n.includes('.tmp-')), []);
  await assertSameAsReference(out);
});

test('SIGINT/SIGTERM leave a loadable checkpoint of the last completed step, exit 130/143; a second signal exits at once', async () => {
  const out = join(dir, 'stopped');
  const rnd = seededRandom(7);
  for (const [sig, code, target] of [['SIGINT', 130, 2], ['SIGTERM', 143, 20], ['SIGINT', 130, 37]] as const) {
    const run = spawnCli(args(out));
    const seen = await waitForStep(run, out, target);
    assert.ok(seen > 0, run.stderr());
    await sleep(rnd() * 20);
    run.child.kill(sig);
    const e = await run.exit;
    const err = run.stderr();
    assert.equal(e.code, code, err);
    assert.ok(!hasStackFrame(err), err);
    const m = /cts-seg: stopped by (SIG\w+) after step (\d+); checkpoint: (\S+)/.exec(err);
    assert.ok(m, err);
    assert.equal(m[1], sig);
    const ck = await loadRunCheckpoint(m[3]!);
    assert.equal(ck.state.step, Number(m[2]));
    assert.ok(ck.state.step >= seen, `the checkpoint (step ${ck.state.step}) holds every logged step (${seen})`);
    const logged = Math.max(...(await logRecords(out)).map((r) => (JSON.parse(r) as { step: number }).step));
    assert.ok(logged <= ck.state.step && logged > ck.state.step - 3, `log.jsonl ends at step ${logged}, the checkpoint's window`);
    assert.ok(!existsSync(join(out, 'run.lock')));
  }
  // a second signal while the first is being honoured: out at once, still without a stack and without the lock
  // (the graceful stop takes some tens of ms, so the second signal may come too late: then try again)
  let atOnce = false;
  for (let attempt = 0; attempt < 3 && !atOnce; attempt++) {
    const run = spawnCli(args(out));
    assert.ok((await waitForStep(run, out, 45)) > 0, run.stderr());
    run.child.kill('SIGINT');
    while (!run.stderr().includes('SIGINT: stopping') && run.child.exitCode === null) await sleep(1);
    run.child.kill('SIGINT');
    assert.equal((await run.exit).code, 130, run.stderr());
    atOnce = /SIGINT again: exiting at once/.test(run.stderr());
    assert.ok(!hasStackFrame(run.stderr()), run.stderr());
    assert.ok(!existsSync(join(out, 'run.lock')));
  }
  assert.ok(atOnce, 'a second SIGINT made the run exit at once');
  // the newest checkpoint unreadable: the resume falls back to the one before and says so
  const newest = await lastCheckpointStep(out);
  await truncate(join(out, 'checkpoints', `step-${String(newest).padStart(8, '0')}`, 'model.safetensors'), 100);
  const final = spawnCli(args(out));
  await finish(final, 'the resumed run');
  assert.match(final.stderr(), /checkpoint \S+ is unreadable \(.+\); falling back to \S+step-\d+/);
  await assertSameAsReference(out);
});

test('two runs into one folder: the second refuses with one line and exit 1, the first is untouched', async () => {
  const out = join(dir, 'shared');
  const first = spawnCli(args(out));
  assert.ok((await waitForStep(first, out, 3)) > 0, first.stderr());
  const second = await runCli(args(out, 1));
  assert.equal(second.code, 1);
  assert.equal(second.stderr, `cts-seg: error: run folder ${out} in use by pid ${first.child.pid} (host ${hostname()})\n`);
  await finish(first, 'the first run');
  assert.deepEqual(JSON.parse(await readFile(join(out, 'config.json'), 'utf8')).seed, 0);
  await assertSameAsReference(out);
  // --out naming a file: one line, not an EEXIST stack
  const file = join(dir, 'a-file');
  await writeFile(file, '');
  for (const target of [file, join(file, 'below')]) {
    const r = await runCli(args(target));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^cts-seg: error: run folder .* is a file \(or lies under one\), not a folder; choose another --out\n$/);
  }
});
