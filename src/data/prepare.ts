// `cts-seg prepare`: download, verify, extract and convert ADE20K, Pascal-Context and Cityscapes into the
// layouts of spec §7 under DIR/<dataset>/. Every step leaves a marker or an atomically written output, so an
// interrupted run resumes where it stopped and a finished directory is recognised at once.
import { existsSync } from 'node:fs';
import { mkdir, open, readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { CtsError } from '../base/errors.js';
import { describeFsError, writeFileAtomic } from '../io/fs.node.js';
import { extractArchive } from './archive.js';
import { CITYSCAPES_LABELID_TO_TRAINID } from './classes.js';
import { DATASETS, openDataset } from './datasets.js';
import { downloadFile, hashFile, postForm, redact } from './download.js';
import { readLabelPng, writePng } from './image.js';
import type { LabelMap } from './types.js';

/** Datasets `prepare` can fetch. */
export type PreparableName = 'ade20k' | 'pcontext' | 'cityscapes';
export const PREPARABLE: readonly PreparableName[] = ['ade20k', 'pcontext', 'cityscapes'];

/** Environment variable that replaces the official download hosts (same meaning as `--url-base`). */
export const URL_BASE_ENV = 'CTS_DATASET_URL_BASE';

/** One running progress display (a bar on a TTY, periodic lines otherwise). */
export interface ProgressTask {
  update(done: number, total?: number): void;
  stop(): void;
}
/** Creates a progress display for a step; `unit` tells how to format the counts. */
export type ProgressFactory = (label: string, unit: 'bytes' | 'files') => ProgressTask;

/** Options of {@link prepareDataset}. */
export interface PrepareOptions {
  /** Replaces the official hosts: files are fetched from `<urlBase>/<file name>` (Cityscapes: `<urlBase>/login/`, `<urlBase>/file-handling/?packageID=N`). */
  urlBase?: string;
  /** Cityscapes account (default: env CITYSCAPES_USERNAME / CITYSCAPES_PASSWORD). */
  username?: string;
  password?: string;
  /** Status lines (the CLI prints them to stderr). */
  log?: (line: string) => void;
  progress?: ProgressFactory;
  /** Automatic resumes of an interrupted download within one run (default 3). */
  retries?: number;
  /** Parallel label conversions (default 2). */
  concurrency?: number;
  /**
   * Expected SHA-1 per file name, replacing the official digests (a mirror serving re-packed files, tests);
   * null turns the check off for that file.
   */
  checksums?: Record<string, string | null>;
  /** Reader of Pascal-Context's `.pth` label files (default: pcontextLabelsFromPth of src/data/pcontext.ts). */
  readPth?: PthReader;
}

/** Outcome of {@link prepareDataset}. */
export interface PrepareResult {
  /** DIR/<dataset>: the folder to pass to openDataset / --data. */
  dir: string;
  /** true when the directory was already complete and nothing was done. */
  alreadyDone: boolean;
  /** Samples per split as read back with openDataset. */
  splits: Record<string, number>;
}

interface RemoteFile {
  file: string;
  url: string;
  sha1?: string;
  /** Path below --url-base when one is given (default: the file name). */
  path?: string;
  /** Unused by training (PC's trainval_merged.json): a failed download only warns. */
  optional?: boolean;
}

const MARKER = '.cts-prepared.json';
const MARKER_VERSION = 1;

const noProgress: ProgressFactory = () => ({ update() {}, stop() {} });

/**
 * Prepares one dataset under `root` (the user's DIR): downloads into DIR/<name>/downloads/ (resuming,
 * checksum-verified), extracts, converts labels and writes the split lists of spec §7. Returns at once when
 * DIR/<name> was already finished by an earlier run.
 */
export async function prepareDataset(name: string, root: string, opts: PrepareOptions = {}): Promise<PrepareResult> {
  if (!(PREPARABLE as readonly string[]).includes(name)) {
    throw new CtsError(`cannot prepare '${name}': expected one of ${PREPARABLE.join(', ')} (CamVid and folder datasets are used as they are)`);
  }
  const dir = join(root, name);
  const marker = join(dir, MARKER);
  const done = await readMarker(marker);
  if (done) return { dir, alreadyDone: true, splits: done };
  const ctx: Ctx = {
    dir, downloads: join(dir, 'downloads'), urlBase: (opts.urlBase ?? process.env[URL_BASE_ENV])?.replace(/\/+$/, ''),
    log: opts.log ?? (() => {}), progress: opts.progress ?? noProgress, retries: opts.retries ?? 3,
    concurrency: Math.max(1, opts.concurrency ?? 2), opts,
  };
  if (name === 'ade20k') await prepareAde(ctx);
  else if (name === 'pcontext') await preparePContext(ctx);
  else await prepareCityscapes(ctx);
  const splits: Record<string, number> = {};
  for (const split of DATASETS[name as PreparableName].splits) {
    if (name === 'ade20k' && split === 'test' && !existsSync(join(dir, 'release_test/testing'))) continue;
    if (name === 'cityscapes' && split === 'test' && !existsSync(join(dir, 'leftImg8bit/test'))) continue;
    splits[split] = (await openDataset(name, dir, split)).samples.length;
  }
  await writeFileAtomic(marker, JSON.stringify({ dataset: name, version: MARKER_VERSION, splits }, null, 2) + '\n');
  ctx.log(`${DATASETS[name as PreparableName].title} is ready in ${dir}: ${Object.entries(splits).map(([s, n]) => `${s} ${n}`).join(', ')}`);
  return { dir, alreadyDone: false, splits };
}

async function readMarker(path: string): Promise<Record<string, number> | undefined> {
  if (!existsSync(path)) return undefined;
  try {
    const m = JSON.parse(await readFile(path, 'utf8')) as { version?: number; splits?: Record<string, number> };
    return m.version === MARKER_VERSION && m.splits ? m.splits : undefined;
  } catch {
    return undefined; // A damaged marker only means the work is redone.
  }
}

interface Ctx {
  dir: string;
  downloads: string;
  urlBase: string | undefined;
  log: (line: string) => void;
  progress: ProgressFactory;
  retries: number;
  concurrency: number;
  opts: PrepareOptions;
}

/** Downloads one file into downloads/ with a progress display; returns its path (undefined for a failed optional file). */
async function fetchFile(ctx: Ctx, f: RemoteFile, extra: { headers?: Record<string, string>; secrets?: string[] } = {}): Promise<string | undefined> {
  const dest = join(ctx.downloads, f.file);
  const url = ctx.urlBase ? `${ctx.urlBase}/${f.path ?? f.file}` : f.url;
  if (!existsSync(dest)) ctx.log(`downloading ${f.file} from ${redact(url, extra.secrets)}`);
  const bar = ctx.progress(f.file, 'bytes');
  try {
    const sha1 = ctx.opts.checksums && f.file in ctx.opts.checksums ? ctx.opts.checksums[f.file] : f.sha1;
    const r = await downloadFile(url, dest, {
      ...(sha1 ? { sha1 } : {}), ...extra, retries: ctx.retries,
      onProgress: (n, total) => bar.update(n, total),
    });
    if (!r.fetched) ctx.log(`${f.file} already downloaded${sha1 ? ' (sha1 verified)' : ''}`);
    return dest;
  } catch (e) {
    if (f.optional && e instanceof CtsError) {
      ctx.log(`warning: skipping ${f.file}, which cts-seg does not use: ${e.message}`);
      return undefined;
    }
    throw e;
  } finally {
    bar.stop();
  }
}

/** Extracts an archive into DIR/<name>/ once; a marker beside the download records completion. */
async function extractOnce(ctx: Ctx, archive: string, into = ctx.dir): Promise<void> {
  const mark = `${archive}.extracted`;
  if (existsSync(mark)) return;
  ctx.log(`extracting ${archive}`);
  const bar = ctx.progress(`extract ${archive.split('/').pop()}`, 'files');
  try {
    await extractArchive(archive, into, { onProgress: (n, t) => bar.update(n, t) });
  } finally {
    bar.stop();
  }
  await writeFileAtomic(mark, '');
}

// ---------------------------------------------------------------- ADE20K (spec §7.1)

const ADE_FILES: RemoteFile[] = [
  { file: 'ADEChallengeData2016.zip', url: 'http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip', sha1: '219e1696abb36c8ba3a3afe7fb2f4b4606a897c7' },
  { file: 'release_test.zip', url: 'http://data.csail.mit.edu/places/ADEchallenge/release_test.zip', sha1: 'e05747892219d10e9243933371a497e905a4860c' },
];

async function prepareAde(ctx: Ctx): Promise<void> {
  for (const f of ADE_FILES) await extractOnce(ctx, (await fetchFile(ctx, f))!);
}

// ---------------------------------------------------------------- Pascal-Context (spec §7.2)

const PC_FILES: RemoteFile[] = [
  // Dropbox mirror used by the reference code; the official VOC host is often unreachable.
  { file: 'VOCtrainval_03-May-2010.tar', url: 'https://www.dropbox.com/s/wtdibo9lb2fur70/VOCtrainval_03-May-2010.tar?dl=1', sha1: 'bf9985e9f2b064752bf6bd654d89f017c76c395a' },
  { file: 'trainval_merged.json', url: 'https://codalabuser.blob.core.windows.net/public/trainval_merged.json', sha1: '169325d9f7e9047537fedca7b04de4dddf10b881', optional: true },
  { file: 'train.pth', url: 'https://hangzh.s3.amazonaws.com/encoding/data/pcontext/train.pth', sha1: '4bfb49e8c1cefe352df876c9b5434e655c9c1d07' },
  { file: 'val.pth', url: 'https://hangzh.s3.amazonaws.com/encoding/data/pcontext/val.pth', sha1: 'ebedc94247ec616c57b9a2df15091784826a7b0c' },
];

/** Signature of the Pascal-Context `.pth` reader (src/data/pcontext.ts): id such as 2008_000002 -> label 0..59. */
export type PthReader = (path: string) => Promise<Map<string, LabelMap>>;

async function loadPthReader(): Promise<PthReader> {
  // Imported lazily so ADE20K/Cityscapes preparation does not load the pickle reader.
  return (await import('./pcontext.js')).pcontextLabelsFromPth;
}

async function preparePContext(ctx: Ctx): Promise<void> {
  const paths: Record<string, string | undefined> = {};
  for (const f of PC_FILES) paths[f.file] = await fetchFile(ctx, f);
  await extractOnce(ctx, paths['VOCtrainval_03-May-2010.tar']!);
  const voc = join(ctx.dir, 'VOCdevkit/VOC2010');
  if (!existsSync(join(voc, 'JPEGImages'))) throw new CtsError(`expected ${join(voc, 'JPEGImages')} after extracting VOCtrainval_03-May-2010.tar; the archive has another layout`);
  const labelDir = join(voc, 'SegmentationClassContext'), listDir = join(voc, 'ImageSets/SegmentationContext');
  const readPth = ctx.opts.readPth ?? (await loadPthReader());
  for (const split of ['train', 'val']) {
    const listPath = join(listDir, `${split}.txt`);
    if (existsSync(listPath)) continue; // The list is written last, so its presence means the split is done.
    ctx.log(`converting ${split}.pth to ${labelDir}`);
    const labels = await readPth(paths[`${split}.pth`]!);
    const ids = [...labels.keys()].sort();
    await mkdirp(labelDir);
    await mkdirp(listDir);
    await forEachPooled(ctx, `labels ${split}`, ids, async (id) => {
      const out = join(labelDir, `${id}.png`);
      if (existsSync(out)) return;
      const l = labels.get(id)!;
      await writePng(out, l.width, l.height, 1, l.data);
    });
    await writeFileAtomic(listPath, ids.map((id) => `${id}\n`).join(''));
  }
}

// ---------------------------------------------------------------- Cityscapes (spec §7.3)

/** Packages of the Cityscapes site; the SHA-1s are the ones the reference script lists (and does not check). */
const CS_PACKAGES = [
  { file: 'gtFine_trainvaltest.zip', packageID: 1, sha1: '99f532cb1af174f5fcc4c5bc8feea8c66246ddbc' },
  { file: 'leftImg8bit_trainvaltest.zip', packageID: 3, sha1: '2c0b77ce9933cc635adda307fbba5566f5d9d404' },
];
const CS_SITE = 'https://www.cityscapes-dataset.com';

/** Logs in like the reference (`username`, `password`, `submit=Login`); success is a 302. Returns the session Cookie header. */
async function cityscapesLogin(ctx: Ctx, username: string, password: string, secrets: string[]): Promise<string> {
  const base = ctx.urlBase ?? CS_SITE;
  ctx.log(`logging in to ${base}/login/`);
  const r = await postForm(`${base}/login/`, { username, password, submit: 'Login' }, { secrets });
  const setCookie = r.headers['set-cookie'] ?? [];
  if (r.status !== 302 || setCookie.length === 0) {
    throw new CtsError(`Cityscapes login at ${redact(base, secrets)}/login/ failed (HTTP ${r.status}${r.status === 200 ? ', the login form came back' : ''}): check the username and password`);
  }
  return setCookie.map((c) => c.split(';')[0]!.trim()).join('; ');
}

async function prepareCityscapes(ctx: Ctx): Promise<void> {
  const missing = CS_PACKAGES.filter((p) => !existsSync(join(ctx.downloads, p.file)));
  let cookie: string | undefined;
  const secrets: string[] = [];
  if (missing.length > 0) {
    const username = ctx.opts.username ?? process.env.CITYSCAPES_USERNAME;
    const password = ctx.opts.password ?? process.env.CITYSCAPES_PASSWORD;
    if (!username || !password) {
      throw new CtsError(`Cityscapes needs an account of www.cityscapes-dataset.com: pass --username and --password or set CITYSCAPES_USERNAME and CITYSCAPES_PASSWORD (or put ${missing.map((p) => p.file).join(' and ')} into ${ctx.downloads})`);
    }
    secrets.push(password, username);
    cookie = await cityscapesLogin(ctx, username, password, secrets);
    secrets.push(...cookie.split('; ').map((c) => c.slice(c.indexOf('=') + 1)).filter((v) => v.length >= 4));
  }
  for (const p of CS_PACKAGES) {
    const path = (await fetchFile(ctx, { file: p.file, url: `${CS_SITE}/file-handling/?packageID=${p.packageID}`, path: `file-handling/?packageID=${p.packageID}` }, {
      ...(cookie ? { headers: { cookie } } : {}), secrets,
    }))!;
    if (!(await isZip(path))) {
      await unlink(path);
      throw new CtsError(`the server sent no zip file for ${p.file} (package ${p.packageID}); the login may have expired or the account lacks access. The file was removed; run again`);
    }
    const mark = `${path}.extracted`;
    if (!existsSync(mark)) {
      const { sha1 } = await hashFile(path);
      if (sha1 !== p.sha1) ctx.log(`note: ${p.file} has sha1 ${sha1}, the reference script lists ${p.sha1} (not an error: the site may have re-packed it)`);
    }
    await extractOnce(ctx, path);
  }
  await convertCityscapesLabels(ctx);
}

async function isZip(path: string): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const b = Buffer.alloc(4);
    await fh.read(b, 0, 4, 0);
    return b.readUInt32LE(0) === 0x04034b50;
  } finally {
    await fh.close();
  }
}

/** `*_gtFine_labelIds.png` -> `*_gtFine_labelTrainIds.png` (cityscapesscripts' trainId table) and {split}.txt lists. */
async function convertCityscapesLabels(ctx: Ctx): Promise<void> {
  const gt = join(ctx.dir, 'gtFine');
  for (const split of ['train', 'val', 'test']) {
    const splitDir = join(gt, split);
    if (!existsSync(splitDir)) continue;
    const jobs: { src: string; dst: string; id: string }[] = [];
    for (const city of (await readdir(splitDir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name).sort()) {
      for (const f of (await readdir(join(splitDir, city))).filter((f) => f.endsWith('_gtFine_labelIds.png')).sort()) {
        const base = f.slice(0, -'_gtFine_labelIds.png'.length);
        jobs.push({ src: join(splitDir, city, f), dst: join(splitDir, city, `${base}_gtFine_labelTrainIds.png`), id: `${city}/${base}` });
      }
    }
    ctx.log(`converting ${jobs.length} ${split} labels to trainIds`);
    await forEachPooled(ctx, `trainIds ${split}`, jobs, async (j) => {
      if (existsSync(j.dst)) return;
      const l = await readLabelPng(j.src);
      const out = new Uint8Array(l.data.length);
      for (let i = 0; i < out.length; i++) out[i] = CITYSCAPES_LABELID_TO_TRAINID[l.data[i]!]!;
      await writePng(j.dst, l.width, l.height, 1, out);
    });
    await writeFileAtomic(join(ctx.dir, `${split}.txt`), jobs.map((j) => `${j.id}\n`).join(''));
  }
}

// ---------------------------------------------------------------- helpers

async function mkdirp(path: string): Promise<void> {
  try {
    await mkdir(path, { recursive: true });
  } catch (e) {
    throw new CtsError(`cannot create ${path}: ${describeFsError(e)}`);
  }
}

/** Runs `fn` over `items` with ctx.concurrency workers, showing file progress. */
async function forEachPooled<T>(ctx: Ctx, label: string, items: T[], fn: (item: T) => Promise<void>): Promise<void> {
  const bar = ctx.progress(label, 'files');
  let next = 0, done = 0;
  try {
    await Promise.all(Array.from({ length: Math.min(ctx.concurrency, items.length) }, async () => {
      while (next < items.length) {
        await fn(items[next++]!);
        bar.update(++done, items.length);
      }
    }));
  } finally {
    bar.stop();
  }
}
