// The model cache: one folder per model under CTS_SEG_CACHE (default: the XDG cache folder), and an
// index.json recording, per model, every file with its size and the SHA-256 of its first complete
// download. The official hosts publish no checksums, so the first download is trusted and every later
// use is checked against it: a file changed on disk (bit rot, a stray edit, a half-copied cache) is an
// error rather than a silently different model.
import { existsSync } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { CtsError } from '../base/errors.js';
import { hashFile } from '../data/download.js';
import { describeFsError, writeFileAtomic } from '../io/fs.node.js';

/** Env var naming the cache folder. */
export const CACHE_ENV = 'CTS_SEG_CACHE';
/** Env var that, set to 1 (or true/yes), forbids any network access: only cached models are used. */
export const OFFLINE_ENV = 'CTS_SEG_OFFLINE';
/** File name of the index inside the cache folder. */
export const INDEX_FILE = 'index.json';

/** One recorded file, its path relative to the model's folder. */
export interface CachedFile {
  path: string;
  size: number;
  sha256: string;
}

/** What the index knows about one model. */
export interface CacheEntry {
  /** The downloaded files (under `files/`). */
  files: CachedFile[];
  /** The converted cts-seg checkpoint, once conversion succeeded. */
  model?: CachedFile;
  /** When the files were downloaded (ISO 8601). */
  pulledAt: string;
}

/** The whole index. */
export interface CacheIndex {
  version: 1;
  models: Record<string, CacheEntry>;
}

/** The cache folder: $CTS_SEG_CACHE, else $XDG_CACHE_HOME/cts-seg, else ~/.cache/cts-seg. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env[CACHE_ENV]) return env[CACHE_ENV];
  const xdg = env.XDG_CACHE_HOME;
  // XDG says a relative path is invalid and must be ignored.
  return xdg && xdg.startsWith('/') ? join(xdg, 'cts-seg') : join(homedir(), '.cache', 'cts-seg');
}

/** Whether CTS_SEG_OFFLINE asks for no network access. */
export function isOffline(env: NodeJS.ProcessEnv = process.env): boolean {
  return /^(1|true|yes|on)$/i.test(env[OFFLINE_ENV]?.trim() ?? '');
}

/** The folder of one model inside the cache. */
export function modelDir(cache: string, name: string): string {
  return join(cache, name);
}

/** Reads the index; a missing one is empty, an unreadable one is an error naming it. */
export async function readIndex(cache: string): Promise<CacheIndex> {
  const path = join(cache, INDEX_FILE);
  if (!existsSync(path)) return { version: 1, models: {} };
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new CtsError(`cannot read ${path}: ${describeFsError(e)}`);
  }
  try {
    const idx = JSON.parse(text) as CacheIndex;
    if (idx.version !== 1 || typeof idx.models !== 'object' || idx.models === null) throw new Error('shape');
    return idx;
  } catch {
    throw new CtsError(`${path} is not a cts-seg cache index; delete it (the cached files are then downloaded again)`);
  }
}

/**
 * Changes the index with `change` and writes it back atomically. Read-modify-write, so two processes
 * pulling at once may drop each other's entry: the files stay and the next pull records them again.
 */
export async function updateIndex(cache: string, change: (idx: CacheIndex) => void): Promise<void> {
  const idx = await readIndex(cache);
  change(idx);
  try {
    await mkdir(cache, { recursive: true });
  } catch (e) {
    throw new CtsError(`cannot create ${cache}: ${describeFsError(e)}`);
  }
  await writeFileAtomic(join(cache, INDEX_FILE), `${JSON.stringify(idx, null, 2)}\n`);
}

/** Size and SHA-256 of a file, as the index records it (`path` relative to `root`). */
export async function describeFile(root: string, path: string): Promise<CachedFile> {
  const d = await hashFile(join(root, path));
  return { path, size: d.bytes, sha256: d.sha256 };
}

/**
 * Checks every recorded file of model `name` against the index: present, same size, same SHA-256.
 * Throws one line naming the file and both digests, with the way out (`pull --force`).
 */
export async function verifyEntry(cache: string, name: string, entry: CacheEntry): Promise<void> {
  const root = modelDir(cache, name);
  const fix = `run cts-seg pull ${name} --force to download it again`;
  for (const f of [...entry.files, ...(entry.model ? [entry.model] : [])]) {
    const path = join(root, f.path);
    let size: number;
    try {
      size = (await stat(path)).size;
    } catch (e) {
      throw new CtsError(`cached file ${path} of ${name} is unreadable (${describeFsError(e)}); ${fix}`);
    }
    const { sha256 } = await hashFile(path);
    if (sha256 !== f.sha256 || size !== f.size) {
      throw new CtsError(`cached file ${path} of ${name} has changed since it was downloaded: sha256 ${sha256} (${size} bytes), the index recorded ${f.sha256} (${f.size} bytes); ${fix}`);
    }
  }
}

/** Bytes a model takes in the cache according to the index. */
export function entryBytes(entry: CacheEntry): number {
  return [...entry.files, ...(entry.model ? [entry.model] : [])].reduce((s, f) => s + f.size, 0);
}
