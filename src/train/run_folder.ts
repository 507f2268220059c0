// A training run's folder is owned by one process at a time: two runs writing into one folder delete
// each other's temporaries and mix one run's config with the other's weights. The owner holds an
// exclusive lock file (pid and host), and on resume the folder is brought back to exactly what the
// resumed checkpoint had seen: the log cut back to its step, leftover temporaries removed.
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { mkdir, open, readdir, rm, stat, truncate } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { CtsError } from '../base/errors.js';
import { describeFsError } from '../io/fs.node.js';

/** Name of the lock file inside a run folder. */
export const LOCK_FILE = 'run.lock';

/** Creates the run folder (one-line errors when the path is a file or unwritable). */
export async function makeRunFolder(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ENOTDIR') throw new CtsError(`run folder ${dir} is a file (or lies under one), not a folder; choose another --out`);
    throw new CtsError(`cannot create the run folder ${dir}: ${describeFsError(e)}`);
  }
  const s = await stat(dir).catch(() => undefined);
  if (!s?.isDirectory()) throw new CtsError(`run folder ${dir} is not a folder; choose another --out`);
}

interface LockOwner {
  pid: number;
  host: string;
}

function readOwner(path: string): LockOwner | undefined {
  try {
    const o = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockOwner>;
    return typeof o.pid === 'number' && typeof o.host === 'string' ? { pid: o.pid, host: o.host } : undefined;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else, so the lock is live
    return (e as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/** The exclusive lock of a run folder; released on every exit path, including process.exit. */
export class RunLock {
  private held = true;
  private readonly onExit = () => this.release();

  private constructor(readonly path: string) {
    // 'exit' also fires on process.exit from a second Ctrl-C and after an uncaught exception
    process.on('exit', this.onExit);
  }

  /** Takes the lock of `dir` (created if needed) or throws "run folder DIR in use by pid N (host H)". */
  static async acquire(dir: string, log: (l: string) => void): Promise<RunLock> {
    await makeRunFolder(dir);
    const path = join(dir, LOCK_FILE);
    const me = hostname();
    for (let attempt = 0; ; attempt++) {
      let fd: number | undefined;
      try {
        fd = openSync(path, 'wx');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new CtsError(`cannot lock the run folder ${dir}: ${describeFsError(e)}`);
      }
      if (fd !== undefined) {
        try {
          writeSync(fd, JSON.stringify({ pid: process.pid, host: me }) + '\n');
        } finally {
          closeSync(fd);
        }
        return new RunLock(path);
      }
      const owner = readOwner(path);
      if (!owner) {
        // the owner may be between creating the file and writing its pid: look again shortly
        if (attempt < 20) {
          await new Promise((r) => setTimeout(r, 25));
          continue;
        }
        throw new CtsError(`run folder ${dir} in use: ${path} names no owner (remove it if no run uses this folder)`);
      }
      if (owner.host !== me || owner.pid === process.pid || isAlive(owner.pid) || attempt >= 20) {
        throw new CtsError(`run folder ${dir} in use by pid ${owner.pid} (host ${owner.host})`);
      }
      log(`taking over the stale lock of ${dir}: pid ${owner.pid} (host ${owner.host}) is no longer running`);
      // re-read just before removing: a run that took the stale lock over meanwhile keeps its own lock
      // (two take-overs within the same few microseconds remain a narrow race)
      const again = readOwner(path);
      if (again && again.pid === owner.pid && again.host === owner.host) {
        try {
          unlinkSync(path);
        } catch {
          // already gone: another run took it over first, and the next attempt will see its lock
        }
      }
    }
  }

  /** Removes the lock file (idempotent; synchronous so it also runs inside an 'exit' listener). */
  release(): void {
    if (!this.held) return;
    this.held = false;
    process.off('exit', this.onExit);
    const owner = readOwner(this.path);
    if (owner && owner.pid !== process.pid) return;
    try {
      unlinkSync(this.path);
    } catch {
      // someone removed it by hand; there is nothing left to release
    }
  }
}

/** Removes the temporaries (`NAME.tmp-PID-...`) that a killed writeFileAtomic left in `dir`. */
export async function sweepTemporaries(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const n of names.filter((x) => /\.tmp-\d+-[0-9a-f]+$/.test(x))) await rm(join(dir, n), { force: true }).catch(() => undefined);
}

/**
 * Cuts `log.jsonl` back to the records of steps <= `step` (and drops a torn last line), so that a
 * resumed run appends exactly what an uninterrupted run would have written after that step.
 */
export async function cutLog(path: string, step: number): Promise<void> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new CtsError(`cannot read ${path}: ${describeFsError(e)}`);
  }
  let text: string;
  try {
    text = await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
  let keep = 0;
  while (keep < text.length) {
    const nl = text.indexOf('\n', keep);
    if (nl < 0) break;
    let s: unknown;
    try {
      s = (JSON.parse(text.slice(keep, nl)) as { step?: unknown }).step;
    } catch {
      break;
    }
    if (typeof s !== 'number' || s > step) break;
    keep = nl + 1;
  }
  const bytes = Buffer.byteLength(text.slice(0, keep), 'utf8');
  if (bytes < Buffer.byteLength(text, 'utf8')) {
    await truncate(path, bytes).catch((e: unknown) => {
      throw new CtsError(`cannot cut ${path} back to step ${step}: ${describeFsError(e)}`);
    });
  }
}
