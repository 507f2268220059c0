// Tiny training runs driven as a user would drive them: the CLI spawned, watched through its
// log.jsonl, and interrupted (SIGKILL, SIGINT, SIGTERM) at chosen moments.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CLI } from './cli.js';

/** A spawned CLI run: the child, its collected stderr and its exit. */
export interface Spawned {
  child: ChildProcess;
  started: number;
  stderr: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawns `cts-seg ARGS...` collecting stderr. */
export function spawnCli(args: string[]): Spawned {
  const started = Date.now();
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  return { child, started, stderr: () => err, exit };
}

/** The last step recorded in `out/log.jsonl` when this child has written it (its mtime is after `since`), else -1. */
export function loggedStep(out: string, since: number): number {
  try {
    const path = join(out, 'log.jsonl');
    if (statSync(path).mtimeMs < since) return -1;
    const lines = readFileSync(path, 'utf8').split('\n').filter((l) => l.endsWith('}'));
    return lines.length ? (JSON.parse(lines[lines.length - 1]!) as { step: number }).step : -1;
  } catch {
    return -1;
  }
}

/** Resolves with the logged step once this child's log reaches `step` (or -1 if the child exits first). */
export function waitForStep(run: Spawned, out: string, step: number): Promise<number> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (s: number) => {
      if (done) return;
      done = true;
      clearInterval(poll);
      resolve(s);
    };
    const poll = setInterval(() => {
      const s = loggedStep(out, run.started);
      if (s >= step) finish(s);
    }, 2);
    void run.exit.then(() => finish(-1));
  });
}

/** log.jsonl records without their wall-clock fields (throughput, elapsed time, memory), which no two runs share. */
export async function logRecords(out: string): Promise<string[]> {
  return (await readFile(join(out, 'log.jsonl'), 'utf8')).split('\n').filter(Boolean).map((l) => {
    const { images_per_second: _i, seconds: _s, rss_mb: _r, ...rest } = JSON.parse(l) as Record<string, unknown>;
    return JSON.stringify(rest);
  });
}

/** Seeded uniform numbers in [0, 1), so every kill schedule is reproducible. */
export { rng as seededRandom } from './random.js';

/** True when `text` holds a JavaScript stack frame. */
export function hasStackFrame(text: string): boolean {
  return /^\s+at .+(\(|:\d+)/m.test(text);
}
