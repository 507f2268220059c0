// Killed with SIGKILL in the middle of training and resumed, a run continues exactly: its following
// losses equal an uninterrupted run's, and every checkpoint left on disk loads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateSynthetic } from '../../src/data/synthetic.js';
import { loadRunCheckpoint } from '../../src/train/checkpoints.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

function args(data: string, out: string): string[] {
  return ['train', '--dataset', 'folder', '--data-root', data, '--backbone', 'custom', '--model', 'd_model=32,n_layers=2,n_heads=2',
    '--crop-size', '64', '--batch-size', '2', '--iterations', '40', '--policy-method', 'random', '--num-tokens-shared', '1',
    '--checkpoint-every', '4', '--log-every', '1', '--workers', '1', '--threads', '1', '--out-dir', out];
}

function runToEnd(a: string[]): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile(process.execPath, [CLI, ...a], (e, _o, err) => (e ? reject(new Error(`training exited with ${e.code ?? e.signal}: ${err.split('\n').filter((l) => !l.startsWith('step ')).join(' | ')}`)) : resolve())),
  );
}

async function losses(out: string): Promise<Map<number, number>> {
  const m = new Map<number, number>();
  for (const line of (await readFile(join(out, 'log.jsonl'), 'utf8')).trim().split('\n')) {
    const r = JSON.parse(line) as { step: number; loss?: number };
    if (r.loss !== undefined) {
      assert.ok(!m.has(r.step), `step ${r.step} is logged once`); // the resume cuts the log back to its checkpoint
      m.set(r.step, r.loss);
    }
  }
  return m;
}

test('SIGKILL mid-training, then resume: the following losses equal an uninterrupted run', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cts-resume-'));
  const data = join(dir, 'data');
  await generateSynthetic(data, { train: 6, val: 2, height: 64, width: 64, seed: 3 });
  const a = join(dir, 'a'), b = join(dir, 'b');
  await runToEnd(args(data, a));
  // run b: kill -9 as soon as its third checkpoint exists, then resume
  const child = spawn(process.execPath, [CLI, ...args(data, b)], { stdio: 'ignore' });
  const killedAt = await new Promise<number>((resolve) => {
    const poll = setInterval(() => {
      if (existsSync(join(b, 'checkpoints', 'step-00000012'))) {
        child.kill('SIGKILL');
        clearInterval(poll);
      }
    }, 2);
    child.on('exit', (_c, signal) => {
      clearInterval(poll);
      resolve(signal === 'SIGKILL' ? 1 : 0);
    });
  });
  assert.equal(killedAt, 1, 'the training process was killed before it finished');
  const left = (await readdir(join(b, 'checkpoints'))).filter((d) => d.startsWith('step-'));
  for (const d of left) await loadRunCheckpoint(join(b, 'checkpoints', d)); // none is corrupt
  const resumedFrom = Math.max(...left.map((d) => Number(d.slice(5))));
  assert.ok(resumedFrom < 40, `the kill landed before the end (last checkpoint ${resumedFrom})`);
  await runToEnd(args(data, b));
  const la = await losses(a), lb = await losses(b);
  assert.equal(lb.size, 40);
  for (let s = 1; s <= 40; s++) {
    assert.ok(Math.abs(la.get(s)! - lb.get(s)!) <= 1e-6, `step ${s}: ${la.get(s)} vs ${lb.get(s)} (resumed from ${resumedFrom})`);
  }
});
