// Extraction of dataset archives (.tar, .tar.gz/.tgz, .zip) with `tar` and `yauzl`, refusing any entry
// that would land outside the target folder (absolute paths, `..`, links pointing out).
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize, relative, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { extract as tarExtract, type ReadEntry } from 'tar';
import yauzl from 'yauzl';
import { CtsError } from '../base/errors.js';
import { describeFsError } from '../io/fs.node.js';

/** Options of {@link extractArchive}. */
export interface ExtractOptions {
  /** Progress as (done, total): archive bytes read for tar files, entries written for zip files. */
  onProgress?: (done: number, total: number) => void;
}

/** Archive kind from the file name. */
export function archiveKind(path: string): 'tar' | 'zip' | undefined {
  const p = path.toLowerCase();
  if (p.endsWith('.zip')) return 'zip';
  if (p.endsWith('.tar') || p.endsWith('.tar.gz') || p.endsWith('.tgz')) return 'tar';
  return undefined;
}

/** The absolute path `entry` extracts to, or an error when it would leave `root`. */
function inside(root: string, entry: string, archive: string): string {
  const clean = entry.replace(/\\/g, '/');
  const target = resolve(root, clean);
  const rel = relative(root, target);
  if (isAbsolute(clean) || /^[a-z]:/i.test(clean) || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
    throw new CtsError(`archive ${archive} holds the entry '${entry}', which would be written outside ${root}; refusing to extract it`);
  }
  return target;
}

/**
 * Extracts a .tar, .tar.gz/.tgz or .zip archive into `destDir` (created if needed). Entries that would
 * escape `destDir` (absolute, `..`, or links whose target leaves it) abort the extraction with a CtsError.
 * Existing files are overwritten, so an interrupted extraction can simply be run again.
 */
export async function extractArchive(archive: string, destDir: string, opts: ExtractOptions = {}): Promise<void> {
  const kind = archiveKind(archive);
  if (!kind) throw new CtsError(`cannot extract ${archive}: expected a .tar, .tar.gz, .tgz or .zip file`);
  const root = resolve(destDir);
  try {
    await mkdir(root, { recursive: true });
  } catch (e) {
    throw new CtsError(`cannot create ${root}: ${describeFsError(e)}`);
  }
  if (kind === 'tar') await extractTar(archive, root, opts);
  else await extractZip(archive, root, opts);
}

async function extractTar(archive: string, root: string, opts: ExtractOptions): Promise<void> {
  let size: number;
  try {
    size = (await stat(archive)).size;
  } catch (e) {
    throw new CtsError(`cannot read archive ${archive}: ${describeFsError(e)}`);
  }
  let refused: CtsError | undefined;
  const check = (path: string, entry: ReadEntry): boolean => {
    try {
      inside(root, path, archive);
      if ((entry.type === 'SymbolicLink' || entry.type === 'Link') && entry.linkpath) {
        const base = entry.type === 'SymbolicLink' ? dirname(normalize(path)) : '.';
        inside(root, isAbsolute(entry.linkpath) ? entry.linkpath : join(base, entry.linkpath), archive);
      }
      return true;
    } catch (e) {
      refused ??= e as CtsError;
      return false;
    }
  };
  let read = 0;
  const input = createReadStream(archive);
  input.on('data', (chunk) => {
    read += chunk.length;
    opts.onProgress?.(read, size);
  });
  const warnings: string[] = [];
  try {
    await pipeline(input, tarExtract({
      cwd: root,
      filter: (p, e) => check(p, e as ReadEntry),
      // Ownership and modes of the archive's author are not wanted on the user's disk.
      preserveOwner: false,
      onwarn: (code, message) => {
        if (code !== 'TAR_ENTRY_INFO') warnings.push(`${code}: ${message}`);
      },
    }));
  } catch (e) {
    throw new CtsError(`cannot extract ${archive}: ${(e as Error).message.split('\n')[0]} (the file may be truncated or not a tar archive)`);
  }
  if (refused) throw refused;
  const fatal = warnings.find((w) => /TAR_BAD_ARCHIVE|TAR_ABORT|zlib|unexpected end/i.test(w));
  if (fatal) throw new CtsError(`cannot extract ${archive}: ${fatal}`);
}

function openZip(archive: string): Promise<yauzl.ZipFile> {
  return new Promise((res, rej) => {
    yauzl.open(archive, { lazyEntries: true, autoClose: true }, (err, zip) => {
      if (err || !zip) rej(new CtsError(`cannot open zip archive ${archive}: ${err?.message ?? 'unknown error'}`));
      else res(zip);
    });
  });
}

async function extractZip(archive: string, root: string, opts: ExtractOptions): Promise<void> {
  const zip = await openZip(archive);
  const total = zip.entryCount;
  let done = 0;
  await new Promise<void>((res, rej) => {
    const fail = (e: unknown) => {
      zip.close();
      const msg = (e as Error).message.split('\n')[0] ?? '';
      // yauzl itself rejects absolute and `..` names before we see the entry.
      const escape = /invalid relative path|absolute path/.test(msg) ? `; the entry would be written outside ${root}, refusing to extract it` : '';
      rej(e instanceof CtsError ? e : new CtsError(`cannot extract ${archive}: ${msg}${escape}`));
    };
    zip.on('error', fail);
    zip.on('end', () => res());
    zip.on('entry', (entry: yauzl.Entry) => {
      void (async () => {
        const target = inside(root, entry.fileName, archive);
        const mode = (entry.externalFileAttributes >>> 16) & 0o170000;
        if (mode === 0o120000) throw new CtsError(`archive ${archive} holds a symbolic link '${entry.fileName}'; refusing to extract links from zip files`);
        if (entry.fileName.endsWith('/')) {
          await mkdir(target, { recursive: true });
        } else {
          await mkdir(dirname(target), { recursive: true });
          const stream = await new Promise<NodeJS.ReadableStream>((ok, ko) => zip.openReadStream(entry, (e, s) => (e || !s ? ko(e ?? new Error('no stream')) : ok(s))));
          await pipeline(stream, createWriteStream(target));
        }
        opts.onProgress?.(++done, total);
        zip.readEntry();
      })().catch(fail);
    });
    zip.readEntry();
  });
}
