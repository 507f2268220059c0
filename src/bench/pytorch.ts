// Same-run comparison with PyTorch: bench/pytorch_segmenter.py builds the same Segmenter(+CTS)
// shapes in PyTorch with the same thread count and times single iterations on request, so cts-seg
// can alternate them with its own. Skipped with a reason when no Python with torch is found
// (Debian: apt-get install python3-torch).
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CtsError } from '../io/errors.js';

/** A script of bench/ (default the forward benchmark), found from the compiled module (dist/src/bench) or the sources (src/bench). */
export function pytorchScript(name = 'pytorch_segmenter.py'): string {
  for (const rel of [`../../../bench/${name}`, `../../bench/${name}`]) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new CtsError(`bench/${name} is not found beside this installation (it ships with the cts-seg repository, not the npm package)`);
}

/** A Python interpreter that can import torch: `python` if given, else $CTS_PYTHON, python3, /usr/bin/python3. */
export function findTorchPython(python?: string): { python?: string; reason?: string } {
  const candidates = python ? [python] : [process.env.CTS_PYTHON, 'python3', '/usr/bin/python3', 'python'].filter((c): c is string => !!c);
  for (const c of candidates) {
    const r = spawnSync(c, ['-c', 'import torch'], { stdio: 'ignore', timeout: 60_000 });
    if (r.status === 0) return { python: c };
  }
  return { reason: `no Python with torch found (tried ${candidates.join(', ')}); on Debian: apt-get install python3-torch` };
}

/** What the PyTorch side reports about itself. */
export interface PytorchInfo {
  torch_version: string;
  /** The BLAS library torch's matmuls call (the reference BLAS makes PyTorch ~15x slower). */
  blas: string;
  threads: number;
  peak_rss_mb?: number;
}

/** Settings of the PyTorch models (the same as the cts-seg run they are compared with). */
export interface PytorchArgs {
  backbone: string;
  decoder: string;
  classes: number;
  imageSize: [number, number];
  /** One model per budget S. */
  budgets: number[];
  policyWidth: number;
  batch: number;
  threads: number;
}

/** timm names of the presets map back to the script's short names. */
const SHORT: Record<string, string> = {
  vit_tiny_patch16_384: 'vit-ti', vit_small_patch16_384: 'vit-s', vit_base_patch16_384: 'vit-b', vit_large_patch16_384: 'vit-l',
};

/**
 * A bench/ script in `--serve` mode: models built once, then one timed iteration per request, so
 * that cts-seg can alternate its iterations with PyTorch's and both see the same machine load.
 */
export class PytorchServer {
  private buffer = '';
  private waiting: ((line: string) => void)[] = [];
  private lines: string[] = [];
  private stderrTail = '';
  private exited: number | null = null;

  private constructor(private readonly child: ChildProcessWithoutNullStreams, readonly info: PytorchInfo) {}

  /** Starts the script and waits until its models are built. */
  static async start(python: string, a: PytorchArgs): Promise<PytorchServer> {
    const backbone = SHORT[a.backbone] ?? a.backbone;
    if (!Object.values(SHORT).includes(backbone)) throw new CtsError(`the PyTorch comparison supports the ViT presets only, not '${a.backbone}'`);
    return PytorchServer.launch(python, pytorchScript(), [
      '--backbone', backbone, '--decoder', a.decoder, '--classes', String(a.classes),
      '--image-size', `${a.imageSize[0]}x${a.imageSize[1]}`, '--num-shared', a.budgets.join(','), '--policy-width', String(a.policyWidth),
      '--batch', String(a.batch), '--threads', String(a.threads),
    ]);
  }

  /** Starts `script --serve ...args` and waits for its ready line (a skipped run is an error). */
  static async launch(python: string, script: string, args: string[]): Promise<PytorchServer> {
    const child = spawn(python, [script, '--serve', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    const server = new PytorchServer(child, { torch_version: '', blas: '', threads: 0 });
    child.stdout.on('data', (d: Buffer) => server.onData(d.toString()));
    child.stderr.on('data', (d: Buffer) => (server.stderrTail = (server.stderrTail + d.toString()).slice(-2000)));
    child.on('close', (c) => {
      server.exited = c ?? 1;
      for (const w of server.waiting.splice(0)) w('');
    });
    child.on('error', () => undefined);
    const ready = JSON.parse((await server.next()) || '{}') as PytorchInfo & { ready?: boolean; skipped?: string };
    if (ready.skipped) throw new CtsError(`the PyTorch comparison was skipped: ${ready.skipped}`);
    if (!ready.ready) throw server.failure('could not start');
    Object.assign(server.info, { torch_version: ready.torch_version, blas: ready.blas, threads: ready.threads });
    return server;
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    const parts = this.buffer.split('\n');
    this.buffer = parts.pop()!;
    for (const l of parts) {
      const w = this.waiting.shift();
      if (w) w(l);
      else this.lines.push(l);
    }
  }

  private next(): Promise<string> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    if (this.exited !== null) return Promise.resolve('');
    return new Promise((res) => this.waiting.push(res));
  }

  private failure(what: string): CtsError {
    const last = this.stderrTail.trim().split('\n').pop() ?? '';
    return new CtsError(`the PyTorch run ${what}${this.exited !== null ? ` (exit ${this.exited})` : ''}${last ? `: ${last}` : ''}`);
  }

  /** Times one forward of the budget-S model (or its policy network alone), in ms. */
  async time(kind: 'forward' | 'policy', S: number): Promise<number> {
    return (await this.request(`${kind} ${S}`)).ms;
  }

  /** Sends one command line; returns its JSON answer, which must carry `ms`. */
  async request(cmd: string): Promise<{ ms: number } & Record<string, unknown>> {
    if (this.exited !== null) throw this.failure('stopped');
    this.child.stdin.write(`${cmd}\n`);
    const line = await this.next();
    const r = JSON.parse(line || '{}') as { ms?: number; error?: string };
    if (r.ms === undefined) throw this.failure(r.error ? `refused '${cmd}': ${r.error}` : 'failed');
    return r as { ms: number } & Record<string, unknown>;
  }

  /** Stops the script; returns its final report (with peak RSS). */
  async close(): Promise<PytorchInfo> {
    if (this.exited === null) {
      this.child.stdin.end('quit\n');
      const r = JSON.parse((await this.next()) || '{}') as PytorchInfo;
      if (r.peak_rss_mb !== undefined) this.info.peak_rss_mb = r.peak_rss_mb;
    }
    this.kill();
    return this.info;
  }

  /** Ends the child process (on errors). */
  kill(): void {
    if (this.exited === null) this.child.kill();
  }
}
