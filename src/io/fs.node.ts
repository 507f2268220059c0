// Node file helpers shared by every Node-side module: fs error descriptions and crash-safe writes.
import { CtsError } from '../base/errors.js';
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { mkdir, open, readdir, rename, rm, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Short human description of a Node fs error (e.g. "no such file or directory"). */
export function describeFsError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  switch (e?.code) {
    case 'ENOENT':
      return 'no such file or directory';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory, expected a file';
    default:
      return String(e?.message ?? err).split('\n')[0] ?? 'unknown error';
  }
}

/**
 * Creates a command's output folder and its missing parents; returns the outermost folder it created
 * (undefined when all existed), for removeCreatedDir when the command fails.
 */
export async function makeOutputDir(dir: string, what = 'output folder'): Promise<string | undefined> {
  try {
    return await mkdir(dir, { recursive: true });
  } catch (e) {
    throw new CtsError(`cannot create ${what} ${dir}: ${describeFsError(e)}`);
  }
}

async function holdsFiles(dir: string): Promise<boolean> {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (!e.isDirectory() || (await holdsFiles(join(dir, e.name)))) return true;
  }
  return false;
}

/**
 * Removes what makeOutputDir created, so that a failed command leaves no empty folders behind. With
 * `keepFiles`, a folder holding any file stays (a command that resumes, like prepare, keeps its
 * partial downloads); never throws, the command's own error is the one to report.
 */
export async function removeCreatedDir(created: string | undefined, o: { keepFiles?: boolean } = {}): Promise<void> {
  if (!created) return;
  try {
    if (o.keepFiles && (await holdsFiles(created))) return;
    await rm(created, { recursive: true, force: true });
  } catch {
    // best effort: leaving a folder behind is better than hiding why the command failed
  }
}

function tempPathFor(path: string): string {
  // Same directory as the target so the final rename stays on one filesystem (and is therefore atomic).
  return join(dirname(path), `${basename(path)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
}

/** Writes `data` to `path` atomically: temp file in the same directory, fsync, rename; the temp file is removed on failure. */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = tempPathFor(path);
  let created = false;
  try {
    const fh = await open(tmp, 'wx');
    created = true;
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    if (created) await unlink(tmp).catch(() => undefined);
    throw new CtsError(`cannot write ${path}: ${describeFsError(err)}`, { cause: err });
  }
}

/** Synchronous variant of {@link writeFileAtomic}. */
export function writeFileAtomicSync(path: string, data: Uint8Array | string): void {
  const tmp = tempPathFor(path);
  let created = false;
  try {
    const fd = openSync(tmp, 'wx');
    created = true;
    try {
      const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      let off = 0;
      while (off < buf.byteLength) off += writeSync(fd, buf, off, buf.byteLength - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    if (created) {
      try {
        unlinkSync(tmp);
      } catch {
        // The temp file may already be gone; the original error is what matters.
      }
    }
    throw new CtsError(`cannot write ${path}: ${describeFsError(err)}`, { cause: err });
  }
}
