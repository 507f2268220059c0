// Run checkpoints that are never left corrupt: each one is a directory
// `checkpoints/step-XXXXXXXX/` (model.safetensors, optimizer.safetensors, state.json) built under a
// temporary name and renamed into place in one atomic step. A crash at any moment leaves either the
// previous complete checkpoint or the new one; stray temporary directories are ignored and removed.
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CtsError } from '../base/errors.js';
import { describeFsError, writeFileAtomic } from '../io/fs.node.js';
import { readSafetensors, writeSafetensors } from '../io/safetensors.node.js';
import type { HostTensor } from '../base/tensor.js';
import { loadCheckpoint, saveCheckpoint } from '../cts/checkpoint.node.js';
import { type ModelCheckpoint } from '../cts/checkpoint.js';

/** Host-side training state saved with each checkpoint (JSON). */
export interface RunState {
  /** Optimizer steps done. */
  step: number;
  /** Resolved configuration of the run. */
  config: Record<string, unknown>;
  /** Best validation score so far, if evaluated. */
  best?: { metric: string; value: number; step: number };
  /** Mean loss of the last logging window, for the summary. */
  lastLoss?: number;
  /** Wall-clock seconds spent training so far. */
  seconds: number;
  /** Loss sum and step count of the logging window still open at this step, so a resumed run logs the same averages. */
  window?: { loss: number; steps: number };
}

const PREFIX = 'step-';

function stepDir(outDir: string, step: number): string {
  return join(outDir, 'checkpoints', `${PREFIX}${String(step).padStart(8, '0')}`);
}

/** Writes a complete checkpoint atomically and keeps the newest `keep` ones. */
export async function saveRunCheckpoint(outDir: string, model: ModelCheckpoint, optimizer: Map<string, HostTensor>, state: RunState, keep = 2): Promise<string> {
  const root = join(outDir, 'checkpoints');
  const final = stepDir(outDir, state.step);
  const tmp = join(root, `.tmp-${PREFIX}${state.step}-${process.pid}`);
  try {
    await mkdir(tmp, { recursive: true });
    await saveCheckpoint(join(tmp, 'model.safetensors'), model);
    await writeSafetensors(join(tmp, 'optimizer.safetensors'), optimizer, { step: String(state.step) });
    await writeFileAtomic(join(tmp, 'state.json'), JSON.stringify(state, null, 2) + '\n');
    if (existsSync(final)) await rm(final, { recursive: true, force: true });
    await rename(tmp, final);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw e instanceof CtsError ? e : new CtsError(`cannot write checkpoint ${final}: ${describeFsError(e)}`);
  }
  // prune by renaming first (atomic), so a kill during the deletion never leaves a half-deleted step-*
  const dirs = (await listComplete(outDir)).slice(0, -keep);
  for (const d of dirs) {
    const trash = join(root, `.tmp-old-${d}-${process.pid}`);
    await rename(join(root, d), trash);
    await rm(trash, { recursive: true, force: true });
  }
  return final;
}

async function listComplete(outDir: string): Promise<string[]> {
  const root = join(outDir, 'checkpoints');
  if (!existsSync(root)) return [];
  const names = await readdir(root);
  for (const n of names.filter((x) => x.startsWith('.tmp-'))) await rm(join(root, n), { recursive: true, force: true }).catch(() => undefined);
  return names.filter((n) => n.startsWith(PREFIX) && existsSync(join(root, n, 'state.json'))).sort();
}

/** The newest complete checkpoint directory of a run, or undefined. */
export async function latestRunCheckpoint(outDir: string): Promise<string | undefined> {
  const dirs = await listComplete(outDir);
  return dirs.length ? join(outDir, 'checkpoints', dirs[dirs.length - 1]!) : undefined;
}

/**
 * Loads the newest checkpoint that reads back whole, saying which unreadable ones it passed over
 * (a disk that lost the newest one should cost its steps, not the run). Undefined when there is none.
 */
export async function loadLatestRunCheckpoint(outDir: string, log: (l: string) => void): Promise<{ dir: string; ck: Awaited<ReturnType<typeof loadRunCheckpoint>> } | undefined> {
  const dirs = (await listComplete(outDir)).reverse().map((d) => join(outDir, 'checkpoints', d));
  const failures: string[] = [];
  for (const [i, dir] of dirs.entries()) {
    try {
      const ck = await loadRunCheckpoint(dir);
      return { dir, ck };
    } catch (e) {
      if (!(e instanceof CtsError)) throw e;
      failures.push(`${dir}: ${e.message}`);
      log(`checkpoint ${dir} is unreadable (${e.message}); ${i + 1 < dirs.length ? `falling back to ${dirs[i + 1]}` : 'no older checkpoint is left'}`);
    }
  }
  if (failures.length) throw new CtsError(`no checkpoint of ${outDir} is readable (${failures.join('; ')}); move checkpoints/ away to start the run again`);
  return undefined;
}

/** Loads a checkpoint directory written by saveRunCheckpoint. */
export async function loadRunCheckpoint(dir: string): Promise<{ model: ModelCheckpoint; optimizer: Map<string, HostTensor>; state: RunState }> {
  let state: RunState;
  try {
    state = JSON.parse(await readFile(join(dir, 'state.json'), 'utf8')) as RunState;
  } catch (e) {
    throw new CtsError(`cannot read ${join(dir, 'state.json')}: ${describeFsError(e)}`);
  }
  const model = await loadCheckpoint(join(dir, 'model.safetensors'));
  const opt = await readSafetensors(join(dir, 'optimizer.safetensors'));
  if (opt.metadata.step !== String(state.step)) {
    throw new CtsError(`${dir}: optimizer state is from step ${opt.metadata.step}, state.json from step ${state.step}`);
  }
  return { model, optimizer: opt.tensors, state };
}
