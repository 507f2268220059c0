// Same-run comparison with PyTorch: bench/pytorch_segmenter.py builds the same Segmenter(+CTS)
// shapes in PyTorch with the same thread count and times single iterations on request, so cts-seg
// can alternate them with its own. Skipped with a reason when no Python with torch is found
// (Debian: apt-get install python3-torch).
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CtsError } from '../base/errors.js';
import type { Precision } from '../nn/params.js';

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

/**
 * How the PyTorch process allocates memory. `default` is the stock environment (what the acceptance
 * numbers and docs/BENCHMARKS.md's main tables use). `tuned` sets three mallopt(3) variables so that
 * glibc keeps large freed blocks instead of returning them to the kernel. Why offer it: stock
 * PyTorch on Linux frees and re-faults its [B, heads, N, N] attention maps every layer; measured on
 * the 2-core machine (ViT-S 512², batch 8) it spends ~45% of its CPU time in the kernel, and with
 * these settings it runs 2.4x faster (0.69 -> 1.65-1.70 images/s). jemalloc's defaults gave nothing,
 * tcmalloc 1.32 images/s. A fair comparison should be able to show PyTorch at its best.
 */
export type PytorchMalloc = 'default' | 'tuned';

/** The environment variables `tuned` adds (values in bytes: mmap and trim thresholds 16 GiB, top pad 1 GiB). */
export const TUNED_MALLOC_ENV: Readonly<Record<string, string>> = {
  MALLOC_MMAP_THRESHOLD_: String(16 * 2 ** 30),
  MALLOC_TRIM_THRESHOLD_: String(16 * 2 ** 30),
  MALLOC_TOP_PAD_: String(2 ** 30),
};

/** `--pytorch-malloc`'s value as a mode; anything else is an error naming the choices. */
export function parsePytorchMalloc(v: string): PytorchMalloc {
  if (v === 'default' || v === 'tuned') return v;
  throw new CtsError(`--pytorch-malloc must be default or tuned, got '${v}'`);
}

/** The PyTorch child's environment for an allocator mode. */
export function pytorchEnv(malloc: PytorchMalloc, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return malloc === 'tuned' ? { ...base, ...TUNED_MALLOC_ENV } : base;
}

/** What the PyTorch side reports about itself. */
export interface PytorchInfo {
  torch_version: string;
  /** The BLAS library torch's matmuls call (the reference BLAS makes PyTorch ~15x slower). */
  blas: string;
  threads: number;
  peak_rss_mb?: number;
  /** The allocator mode the process ran with. */
  malloc?: PytorchMalloc;
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
  /** The PyTorch process's allocator setup (default: the stock environment). */
  malloc?: PytorchMalloc;
  /** int8 models: torch's quantize_dynamic on every nn.Linear with this quantized engine (Debian's torch has onednn and qnnpack, no fbgemm). */
  quantize?: 'onednn' | 'qnnpack';
  /** The models to serve (default: int8 with `quantize`, else fp32); both for a same-run precision comparison. */
  precisions?: readonly Precision[];
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
      '--batch', String(a.batch), '--threads', String(a.threads), ...(a.quantize ? ['--quantize-dynamic', a.quantize] : []),
      ...(a.precisions ? ['--precisions', a.precisions.join(',')] : []),
    ], a.malloc);
  }

  /**
   * Starts `script --serve ...args` (in the environment of allocator mode `malloc`) and waits for its
   * ready line (a skipped run is an error).
   */
  static async launch(python: string, script: string, args: string[], malloc: PytorchMalloc = 'default'): Promise<PytorchServer> {
    const child = spawn(python, [script, '--serve', ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: pytorchEnv(malloc) });
    const server = new PytorchServer(child, { torch_version: '', blas: '', threads: 0, malloc });
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

  /** Times one forward of the budget-S model at a precision it serves (or its policy network alone), in ms. */
  async time(kind: 'forward' | 'policy', S: number, precision?: Precision): Promise<number> {
    return (await this.request(`${kind} ${S}${precision ? ` ${precision}` : ''}`)).ms;
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
