// `pull`: fetch a zoo model's official files into the cache (resumable, checked against the registry
// and, on later use, against the index), convert a Segmenter run into a cts-seg checkpoint beside
// them, and hand back its path. resolveModel is the entry for `--model NAME` and Segmenter.load(NAME).
import { existsSync } from 'node:fs';
import { readdir, rm, rmdir, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { CtsError } from '../base/errors.js';
import type { ModelCheckpoint } from '../cts/checkpoint.js';
import { saveCheckpoint } from '../cts/checkpoint.node.js';
import { DATASETS, isDatasetName } from '../data/catalog.js';
import { downloadFile } from '../data/download.js';
import type { ProgressFactory } from '../data/prepare.js';
import { describeFsError } from '../io/fs.node.js';
import {
  CACHE_ENV, OFFLINE_ENV, cacheDir, describeFile, entryBytes, isOffline, modelDir, readIndex, updateIndex, verifyEntry,
  type CacheEntry, type CachedFile,
} from './cache.node.js';
import { convertOfficialRun, type ConvertRun } from './convert.node.js';
import { modelRecords, MODEL_BASE_ENV, fileUrl, findModel, unknownModelError, type ModelRecord } from './registry.js';

/** File name of the converted checkpoint inside a model's cache folder. */
export const MODEL_FILE = 'model.safetensors';
/** Folder (inside a model's cache folder) holding the downloaded files: the run folder the converter reads. */
export const FILES_DIR = 'files';

/** Options of {@link pull} and {@link resolveModel}. */
export interface PullOptions {
  /** Run folder -> checkpoint (default: {@link convertOfficialRun}). */
  convert?: ConvertRun;
  /** Drop what the cache holds for the model and download it again. */
  force?: boolean;
  /** Cache folder (default: {@link cacheDir}). */
  cache?: string;
  /** Base URL replacing the official hosts (default: env CTS_SEG_MODEL_BASE). */
  base?: string;
  /** Never touch the network (default: env CTS_SEG_OFFLINE). */
  offline?: boolean;
  /** The records to look names up in (default: {@link modelRecords}); tests add their own. */
  models?: readonly ModelRecord[];
  /** Automatic resumes of an interrupted download within one call (default 3). */
  retries?: number;
  progress?: ProgressFactory;
  log?: (line: string) => void;
}

/** What {@link pull} did. */
export interface PullResult {
  record: ModelRecord;
  /** The file to use: the converted checkpoint, or for a backbone its .npz (for `train --pretrained`). */
  path: string;
  /** Whether anything was downloaded (false: everything came from the cache). */
  downloaded: boolean;
  /** Whether the conversion ran in this call. */
  converted: boolean;
}

/**
 * Makes model `name` available in the cache and returns where it is. A cached model is checked against
 * the index (size and SHA-256 of every file) and used as is; otherwise its files are downloaded from the
 * registry's URLs only (into `.part` files that a later call resumes), refused when their size differs
 * from the registry's, recorded in the index, and a Segmenter run is converted with `o.convert` into
 * `<cache>/<name>/model.safetensors`. Offline, a model not in the cache is one clear error. A failure
 * other than an interrupted transfer leaves nothing of the model in the cache.
 */
export async function pull(name: string, o: PullOptions = {}): Promise<PullResult> {
  const models = o.models ?? modelRecords();
  const record = findModel(name, models);
  if (!record) throw unknownModelError(name, models);
  const cache = o.cache ?? cacheDir();
  const offline = o.offline ?? isOffline();
  const dir = modelDir(cache, record.name);
  let entry: CacheEntry | undefined = (await readIndex(cache)).models[record.name];
  let downloaded = false;
  if (o.force) {
    if (offline) throw new CtsError(`--force downloads ${record.name} again, but ${OFFLINE_ENV} forbids network access`);
    await removeModel(cache, record.name);
    entry = undefined;
  }
  if (entry) {
    await verifyEntry(cache, record.name, entry);
  } else {
    if (offline) {
      throw new CtsError(`model ${record.name} is not in the cache ${cache} and ${OFFLINE_ENV} forbids downloading it; run cts-seg pull ${record.name} with network access first (or point ${CACHE_ENV} at a cache that has it)`);
    }
    entry = await download(record, cache, o);
    downloaded = true;
  }
  if (record.kind === 'backbone') return { record, path: join(dir, entry.files[0]!.path), downloaded, converted: false };
  if (entry.model) return { record, path: join(dir, entry.model.path), downloaded, converted: false };
  const model = await convert(record, dir, o);
  await updateIndex(cache, (idx) => {
    idx.models[record.name] = { ...entry, model };
  });
  o.log?.(`converted ${record.name} into ${join(dir, MODEL_FILE)}`);
  return { record, path: join(dir, MODEL_FILE), downloaded, converted: true };
}

/** Downloads every file of `record`, then records them; on failure removes the model's folder unless a transfer can resume. */
async function download(record: ModelRecord, cache: string, o: PullOptions): Promise<CacheEntry> {
  const dir = modelDir(cache, record.name);
  const cacheExisted = existsSync(cache);
  const base = o.base ?? process.env[MODEL_BASE_ENV];
  const files: CachedFile[] = [];
  try {
    for (const f of record.files) {
      const url = fileUrl(record, f, base || undefined);
      const dest = join(dir, FILES_DIR, f.name);
      o.log?.(`downloading ${url}`);
      const task = o.progress?.(`${record.name} ${f.name}`, 'bytes');
      let r;
      try {
        r = await downloadFile(url, dest, {
          retries: o.retries ?? 3,
          ...(f.sha256 ? { sha256: f.sha256 } : {}),
          ...(task ? { onProgress: (n: number, total: number | undefined) => task.update(n, total) } : {}),
        });
      } finally {
        task?.stop();
      }
      if (f.size !== undefined && r.bytes !== f.size) {
        await unlink(dest).catch(() => undefined);
        throw new CtsError(`download of ${url} gave ${r.bytes} bytes, the registry records ${f.size}; the file was refused (truncated, or changed at the host)`);
      }
      files.push({ path: `${FILES_DIR}/${f.name}`, size: r.bytes, sha256: r.sha256 });
    }
  } catch (e) {
    // A kept .part is a transfer the next pull resumes; anything else is of no use and goes.
    if (!(await hasPartial(join(dir, FILES_DIR)))) await removeFolders(dir, cacheExisted ? undefined : cache);
    throw e;
  }
  const entry: CacheEntry = { files, pulledAt: new Date().toISOString() };
  await updateIndex(cache, (idx) => {
    idx.models[record.name] = entry;
  });
  o.log?.(`downloaded ${record.name}: ${(entryBytes(entry) / 2 ** 20).toFixed(1)} MiB in ${join(dir, FILES_DIR)}`);
  return entry;
}

async function hasPartial(dir: string): Promise<boolean> {
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.some((n) => n.endsWith('.part'));
}

/** Removes a model folder, and the cache folder too when this call created it and it is now empty. */
async function removeFolders(dir: string, createdCache: string | undefined): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  if (createdCache) await rmdir(createdCache).catch(() => undefined);
}

/** Removes everything the cache holds for model `name` (its folder and its index entry). */
export async function removeModel(cache: string, name: string): Promise<void> {
  try {
    await rm(modelDir(cache, name), { recursive: true, force: true });
  } catch (e) {
    throw new CtsError(`cannot remove ${modelDir(cache, name)}: ${describeFsError(e)}`);
  }
  if ((await readIndex(cache)).models[name]) {
    await updateIndex(cache, (idx) => {
      delete idx.models[name];
    });
  }
}

/** Runs the converter on the downloaded run folder, checks the result against the record, and saves it. */
async function convert(record: ModelRecord, dir: string, o: PullOptions): Promise<CachedFile> {
  let ckpt: ModelCheckpoint;
  try {
    ckpt = await (o.convert ?? convertOfficialRun)(join(dir, FILES_DIR));
  } catch (e) {
    if (e instanceof CtsError) throw new CtsError(`converting ${record.name} failed: ${e.message}`, { cause: e });
    throw e;
  }
  checkAgainstRecord(ckpt, record);
  await saveCheckpoint(join(dir, MODEL_FILE), withCatalogClasses(ckpt, record));
  return describeFile(dir, MODEL_FILE);
}

/** A converter that built another architecture than the record describes is a wrong file or a wrong record. */
function checkAgainstRecord(ckpt: ModelCheckpoint, record: ModelRecord): void {
  const c = ckpt.config, b = record.backbone;
  const diffs = ([['d_model', c.d_model, b.d_model], ['n_layers', c.n_layers, b.n_layers], ['patch_size', c.patch_size, b.patch_size], ['decoder', c.decoder, record.decoder?.kind]] as const)
    .filter(([, got, want]) => want !== undefined && got !== want)
    .map(([k, got, want]) => `${k} ${got} (registry: ${want})`);
  if (diffs.length) throw new CtsError(`the converted ${record.name} is not the model the registry describes: ${diffs.join(', ')}`);
}

/** Class names and palette from the catalog dataset the record names, when the class count agrees. */
function withCatalogClasses(ckpt: ModelCheckpoint, record: ModelRecord): ModelCheckpoint {
  if (!isDatasetName(record.dataset)) return ckpt;
  const d = DATASETS[record.dataset];
  if (d.classes.length !== ckpt.config.n_cls) return ckpt;
  return { ...ckpt, classes: [...d.classes], palette: d.palette.map((p) => [p[0], p[1], p[2]]), dataset: record.dataset };
}

/** One row of {@link listModels}. */
export interface ModelListing {
  record: ModelRecord;
  /** Ready to use from the cache (files recorded, and converted for a Segmenter run). */
  cached: boolean;
  /** Bytes the cache holds for it, per the index. */
  cachedBytes?: number;
}

/** Every record with its cache state, read from the index only (no hashing, so it is quick). */
export async function listModels(o: Pick<PullOptions, 'cache' | 'models'> = {}): Promise<ModelListing[]> {
  const idx = await readIndex(o.cache ?? cacheDir());
  return (o.models ?? modelRecords()).map((record) => {
    const e = idx.models[record.name];
    if (!e) return { record, cached: false };
    return { record, cached: record.kind === 'backbone' || e.model !== undefined, cachedBytes: entryBytes(e) };
  });
}

/**
 * The checkpoint file for `nameOrPath`: a zoo name is pulled (from the cache when there, checked; else
 * downloaded unless offline) and its model.safetensors returned; an existing file is returned as is.
 * A backbone name is refused (it is no segmentation model), as is a name that is neither.
 */
export async function resolveModel(nameOrPath: string, o: PullOptions = {}): Promise<string> {
  const record = findModel(nameOrPath, o.models ?? modelRecords());
  if (record) {
    if (record.kind === 'backbone') {
      throw new CtsError(`${record.name} is an ImageNet backbone, not a segmentation model; train from it with cts-seg train --pretrained "$(cts-seg pull ${record.name})"`);
    }
    return (await pull(record.name, o)).path;
  }
  if (existsSync(nameOrPath)) return resolve(nameOrPath);
  if (/[/\\]|\.[a-z0-9]+$/i.test(nameOrPath)) throw new CtsError(`cannot read ${nameOrPath}: no such file or directory`);
  throw unknownModelError(nameOrPath, o.models ?? modelRecords());
}
