// Random access to the members of a zip archive (PyTorch >= 1.6 checkpoints, NumPy .npz) through
// yauzl, which reads the central directory (zip64 included, as numpy writes it) and streams one
// member at a time, so a multi-GB file never has to sit in memory whole.
import { open as openFile } from 'node:fs/promises';
import yauzl from 'yauzl';
import { CtsError } from '../base/errors.js';
import { describeFsError } from './fs.node.js';

/** Deflate's largest expansion (RFC 1951: 258 bytes from a 2-bit code, rounded up as zlib documents). */
const MAX_DEFLATE_RATIO = 1032;

/** An open zip archive; call {@link ZipArchive.close} when done. */
export interface ZipArchive {
  /** Member names in the archive's order (directories left out). */
  readonly names: readonly string[];
  /** Uncompressed size of a member, or undefined when absent. */
  size(name: string): number | undefined;
  /** The bytes of one member (decompressed, size-checked by yauzl). */
  read(name: string): Promise<Uint8Array>;
  /** Releases the file descriptor. */
  close(): void;
}

/** True when the file starts with a zip local-file-header signature ("PK\x03\x04"). */
export async function isZipFile(path: string, what = 'file'): Promise<boolean> {
  let fh;
  try {
    fh = await openFile(path, 'r');
  } catch (err) {
    throw new CtsError(`cannot read ${what} ${path}: ${describeFsError(err)}`, { cause: err });
  }
  try {
    const head = Buffer.alloc(4);
    const { bytesRead } = await fh.read(head, 0, 4, 0);
    return bytesRead === 4 && head.readUInt32LE(0) === 0x04034b50;
  } finally {
    await fh.close();
  }
}

/** Opens a zip archive and lists its members; `what` names the file kind in errors ("npz file"). */
export async function openZip(path: string, what = 'zip file'): Promise<ZipArchive> {
  let zf: yauzl.ZipFile;
  try {
    zf = await yauzl.openPromise(path, { lazyEntries: true, autoClose: false });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code ? describeFsError(err) : `not a valid zip archive (${e.message})`;
    throw new CtsError(`cannot read ${what} ${path}: ${why}`, { cause: err });
  }
  const entries = new Map<string, yauzl.Entry>();
  try {
    for await (const entry of zf.eachEntry()) {
      if (!entry.fileName.endsWith('/')) entries.set(entry.fileName, entry);
    }
  } catch (err) {
    zf.close();
    throw new CtsError(`cannot read ${what} ${path}: corrupt zip directory (${(err as Error).message})`, { cause: err });
  }
  return {
    names: [...entries.keys()],
    size: (name) => entries.get(name)?.uncompressedSize,
    async read(name) {
      const entry = entries.get(name);
      if (!entry) throw new CtsError(`${what} ${path} has no member '${name}'`);
      // The directory's sizes are checked against what the file can hold before anything is
      // allocated: deflate expands at most 1032:1, and a stored member is its own size.
      const most = entry.compressionMethod === 0 ? entry.compressedSize : entry.compressedSize * MAX_DEFLATE_RATIO + 1024;
      if (entry.compressedSize > zf.fileSize || entry.uncompressedSize > most) {
        throw new CtsError(`cannot read member '${name}' of ${what} ${path}: its directory entry claims ${entry.uncompressedSize} bytes from ${entry.compressedSize} compressed bytes in a ${zf.fileSize}-byte file (corrupt archive)`);
      }
      try {
        const stream = await zf.openReadStreamPromise(entry);
        const out = Buffer.allocUnsafe(entry.uncompressedSize);
        let at = 0;
        for await (const chunk of stream as AsyncIterable<Buffer>) {
          if (at + chunk.byteLength > out.byteLength) throw new Error('member is longer than its directory entry says');
          chunk.copy(out, at);
          at += chunk.byteLength;
        }
        if (at !== out.byteLength) throw new Error(`member ended after ${at} of ${out.byteLength} bytes`);
        return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
      } catch (err) {
        throw new CtsError(`cannot read member '${name}' of ${what} ${path}: ${(err as Error).message} (truncated or corrupt archive)`, { cause: err });
      }
    },
    close: () => zf.close(),
  };
}
