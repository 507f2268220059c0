// Resumable, checksum-verified HTTP(S) downloads for dataset preparation.
// Hand-written over node:http/https: fetch() cannot resume into a partial file with Range and report the
// exact resume semantics (206 vs a server that ignores Range), and no well-kept small library does both
// resume and digest checking without extra machinery. Credentials passed as `secrets` are redacted from
// every message this module produces.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdir, rename, stat, unlink } from 'node:fs/promises';
import http, { type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';
import { dirname } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CtsError } from '../base/errors.js';
import { describeFsError } from '../io/fs.node.js';

/** Options of {@link downloadFile}. */
export interface DownloadOptions {
  /** Expected SHA-1 (hex); a mismatch removes the file and throws. */
  sha1?: string;
  /** Expected SHA-256 (hex); a mismatch removes the file and throws. */
  sha256?: string;
  /** Extra request headers (e.g. a session Cookie). Cookie/Authorization are dropped on a cross-origin redirect. */
  headers?: Record<string, string>;
  /** Called as bytes arrive: bytes of the file present so far, and the full size when the server says it. */
  onProgress?: (received: number, total: number | undefined) => void;
  /** Strings (passwords, cookies) that must never appear in a message; they are replaced by `***`. */
  secrets?: string[];
  /** How often an interrupted transfer is resumed automatically within this call (default 0). */
  retries?: number;
  /** Give up when no byte arrives for this long (ms, default 60000). */
  idleTimeoutMs?: number;
}

/** What {@link downloadFile} did. */
export interface DownloadResult {
  path: string;
  bytes: number;
  /** Hex digests of the file at `path`. */
  sha1: string;
  sha256: string;
  /** false when `dest` was already present (and matched the checksums given) so nothing was fetched. */
  fetched: boolean;
}

const MAX_REDIRECTS = 5;

/** Replaces every secret (raw and URL-encoded) and any URL user-info in `text` with `***`. */
export function redact(text: string, secrets: readonly string[] = []): string {
  let out = text.replace(/(\b[a-z][a-z0-9+.-]*:\/\/)[^/\s@]+@/gi, '$1***@');
  for (const s of secrets) {
    if (!s) continue;
    for (const form of new Set([s, encodeURIComponent(s), encodeURIComponent(s).replace(/%20/g, '+')])) out = out.split(form).join('***');
  }
  return out;
}

/** Hex SHA-1 and SHA-256 of a file, streamed. */
export async function hashFile(path: string): Promise<{ sha1: string; sha256: string; bytes: number }> {
  const h1 = createHash('sha1'), h256 = createHash('sha256');
  let bytes = 0;
  try {
    for await (const chunk of createReadStream(path)) {
      h1.update(chunk as Buffer);
      h256.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }
  } catch (e) {
    throw new CtsError(`cannot read ${path}: ${describeFsError(e)}`);
  }
  return { sha1: h1.digest('hex'), sha256: h256.digest('hex'), bytes };
}

function checksumProblem(digests: { sha1: string; sha256: string }, opts: DownloadOptions): string | undefined {
  if (opts.sha1 && digests.sha1 !== opts.sha1.toLowerCase()) return `expected sha1 ${opts.sha1.toLowerCase()}, got ${digests.sha1}`;
  if (opts.sha256 && digests.sha256 !== opts.sha256.toLowerCase()) return `expected sha256 ${opts.sha256.toLowerCase()}, got ${digests.sha256}`;
  return undefined;
}

/** Raised inside a transfer that may be resumed (connection lost, short body); carries the redacted reason. */
class Interrupted extends Error {}

interface Response {
  res: IncomingMessage;
  url: string;
}

/** One GET (or other method) following up to 5 redirects; Cookie/Authorization are not sent to another origin. */
async function request(url: string, headers: OutgoingHttpHeaders, opts: DownloadOptions, method = 'GET', body?: string, follow = true): Promise<Response> {
  let current = url;
  let hdrs = { ...headers };
  for (let hop = 0; ; hop++) {
    const res = await requestOnce(current, hdrs, opts, method, body);
    const loc = res.headers.location;
    if (!follow || !loc || ![301, 302, 303, 307, 308].includes(res.statusCode ?? 0)) return { res, url: current };
    res.resume();
    if (hop >= MAX_REDIRECTS) throw new CtsError(`too many redirects (more than ${MAX_REDIRECTS}) starting at ${redact(url, opts.secrets)}`);
    const next = new URL(loc, current);
    if (next.origin !== new URL(current).origin) {
      hdrs = Object.fromEntries(Object.entries(hdrs).filter(([k]) => !['cookie', 'authorization'].includes(k.toLowerCase())));
    }
    if (res.statusCode === 303) {
      method = 'GET';
      body = undefined;
    }
    current = next.toString();
  }
}

function requestOnce(url: string, headers: OutgoingHttpHeaders, opts: DownloadOptions, method: string, body?: string): Promise<IncomingMessage> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new CtsError(`invalid download URL '${redact(url, opts.secrets)}'`);
  }
  const lib = parsed.protocol === 'https:' ? https : parsed.protocol === 'http:' ? http : undefined;
  if (!lib) throw new CtsError(`unsupported URL scheme in ${redact(url, opts.secrets)}: expected http or https`);
  return new Promise((resolve, reject) => {
    // a fresh connection per request (agent: false): Node's default agent keeps sockets alive, and a socket
    // the server dropped after an earlier, interrupted transfer would fail the next request with ECONNRESET
    const req = lib.request(parsed, { method, agent: false, headers: { 'user-agent': 'cts-seg', ...headers } }, resolve);
    req.setTimeout(opts.idleTimeoutMs ?? 60_000, () => req.destroy(new Interrupted('no data received for too long')));
    req.on('error', (e) => {
      const why = redact(`${(e as NodeJS.ErrnoException).code ?? ''} ${e.message}`.trim(), opts.secrets);
      reject(e instanceof Interrupted ? e : new CtsError(`cannot reach ${redact(url, opts.secrets)}: ${why}`));
    });
    req.end(body);
  });
}

/** Parses `bytes a-b/total` of a 206 reply. */
function parseContentRange(v: string | undefined): { start: number; total: number | undefined } | undefined {
  const m = /^bytes\s+(\d+)-\d+\/(\d+|\*)$/.exec(v?.trim() ?? '');
  return m ? { start: Number(m[1]), total: m[2] === '*' ? undefined : Number(m[2]) } : undefined;
}

/** Feeds the bytes already in `part` into the hashes (resume keeps one pass over the data). */
async function hashExisting(part: string, hashes: Hash[]): Promise<void> {
  for await (const chunk of createReadStream(part)) for (const h of hashes) h.update(chunk as Buffer);
}

/** One transfer attempt into `part`, resuming from what is there. Returns the digests of the complete file. */
async function transfer(url: string, part: string, opts: DownloadOptions): Promise<{ sha1: string; sha256: string; bytes: number }> {
  const secrets = opts.secrets ?? [];
  let have = existsSync(part) ? (await stat(part)).size : 0;
  const headers: OutgoingHttpHeaders = { ...opts.headers };
  if (have > 0) headers.range = `bytes=${have}-`;
  const { res, url: finalUrl } = await request(url, headers, opts);
  const status = res.statusCode ?? 0;
  let total: number | undefined;
  const len = res.headers['content-length'] !== undefined ? Number(res.headers['content-length']) : undefined;
  if (status === 416 && have > 0) {
    // The part is at or past the end the server knows: start over rather than trust it.
    res.resume();
    await unlink(part);
    return transfer(url, part, opts);
  }
  if (status === 206 && have > 0) {
    const range = parseContentRange(res.headers['content-range']);
    if (!range || range.start !== have) {
      res.resume();
      await unlink(part);
      return transfer(url, part, opts);
    }
    total = range.total ?? (len !== undefined ? have + len : undefined);
  } else if (status === 200) {
    have = 0; // No Range (or the server ignored it): the body is the whole file.
    total = len;
  } else {
    res.resume();
    const hint = status === 401 || status === 403 ? ' (check the credentials or login)' : status === 404 ? ' (check --url-base)' : '';
    throw new CtsError(`download of ${redact(finalUrl, secrets)} failed: HTTP ${status} ${redact(res.statusMessage ?? '', secrets)}${hint}`);
  }
  const h1 = createHash('sha1'), h256 = createHash('sha256');
  if (have > 0) await hashExisting(part, [h1, h256]);
  let received = have;
  opts.onProgress?.(received, total);
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      h1.update(chunk);
      h256.update(chunk);
      received += chunk.length;
      opts.onProgress?.(received, total);
      cb(null, chunk);
    },
  });
  try {
    await pipeline(res, tap, createWriteStream(part, { flags: have > 0 ? 'a' : 'w' }));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code?.startsWith('ERR_STREAM') || ['ECONNRESET', 'EPIPE', 'ETIMEDOUT'].includes((e as NodeJS.ErrnoException).code ?? '') || e instanceof Interrupted) {
      throw new Interrupted(`connection lost after ${received} bytes (${redact((e as Error).message, secrets)})`);
    }
    throw new CtsError(`cannot write ${part}: ${describeFsError(e)}`);
  }
  if (total !== undefined && received !== total) throw new Interrupted(`got ${received} of ${total} bytes`);
  return { sha1: h1.digest('hex'), sha256: h256.digest('hex'), bytes: received };
}

/**
 * Downloads `url` to `dest`: streams into `dest + '.part'`, resumes an earlier partial download with a Range
 * request (a server that ignores Range restarts it), verifies `sha1`/`sha256`, then renames into place, so
 * `dest` only ever holds a complete, verified file. A `dest` already present with matching checksums (or
 * present at all when none are given) is not downloaded again. Follows up to 5 redirects. A checksum
 * mismatch removes the file and throws a CtsError naming the file and both digests; an interrupted transfer
 * keeps the `.part` so the next call resumes it.
 */
export async function downloadFile(url: string, dest: string, opts: DownloadOptions = {}): Promise<DownloadResult> {
  const secrets = opts.secrets ?? [];
  if (existsSync(dest)) {
    const d = await hashFile(dest);
    if (!checksumProblem(d, opts)) return { path: dest, ...d, fetched: false };
    await unlink(dest); // A stale or corrupt copy: fetch it again.
  }
  try {
    await mkdir(dirname(dest), { recursive: true });
  } catch (e) {
    throw new CtsError(`cannot create ${dirname(dest)}: ${describeFsError(e)}`);
  }
  const part = `${dest}.part`;
  const attempts = 1 + Math.max(0, opts.retries ?? 0);
  let digests: { sha1: string; sha256: string; bytes: number } | undefined;
  for (let a = 1; !digests; a++) {
    try {
      digests = await transfer(url, part, opts);
    } catch (e) {
      if (!(e instanceof Interrupted)) throw e;
      if (a >= attempts) {
        throw new CtsError(`download of ${redact(url, secrets)} was interrupted: ${redact(e.message, secrets)}; the partial file ${part} is kept, run again to resume`);
      }
    }
  }
  const bad = checksumProblem(digests, opts);
  if (bad) {
    await unlink(part).catch(() => undefined);
    throw new CtsError(`checksum mismatch for ${dest} (from ${redact(url, secrets)}): ${bad}; the file was removed`);
  }
  try {
    await rename(part, dest);
  } catch (e) {
    throw new CtsError(`cannot move ${part} to ${dest}: ${describeFsError(e)}`);
  }
  return { path: dest, ...digests, fetched: true };
}

/** Reply of {@link postForm}: status, headers and the (small) body text. */
export interface FormReply {
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
}

/**
 * POSTs an application/x-www-form-urlencoded form without following redirects (logins answer 302 on
 * success). Messages are redacted with `secrets`; the body is read up to 1 MiB.
 */
export async function postForm(url: string, fields: Record<string, string>, opts: { headers?: Record<string, string>; secrets?: string[] } = {}): Promise<FormReply> {
  const body = new URLSearchParams(fields).toString();
  const o: DownloadOptions = { secrets: opts.secrets ?? [] };
  const { res } = await request(url, { ...opts.headers, 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) }, o, 'POST', body, false);
  let text = '';
  for await (const chunk of res) {
    if (text.length < 1 << 20) text += (chunk as Buffer).toString('utf8');
  }
  return { status: res.statusCode ?? 0, headers: res.headers, body: text };
}
