// DataLoader: batches of augmented samples, decoded and augmented in worker_threads and prefetched
// ahead of the training loop. Everything random is a function of (seed, epoch, sample index): the sample
// order of an epoch is a seeded shuffle, and each sample's augmentation has its own seeded stream. Batches
// therefore do not depend on the number of workers or on timing, a run is reproducible bit for bit, and
// a resumed run (epoch, step) sees exactly the batches the uninterrupted run would have seen.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { CtsError } from '../base/errors.js';
import { createRng } from '../base/rng.js';
import { openDataset } from './datasets.js';
import type { SegDataset } from './types.js';
import { buildBatch, outputSize, type BatchItem, type BuiltBatch, type DatasetRef, type LoaderAugment, type ReplyMessage, type TaskMessage, type WorkerInit } from './worker.js';

export type { DatasetRef, LoaderAugment } from './worker.js';

/** Options of a {@link DataLoader}. */
export interface DataLoaderOptions {
  /** Samples per batch. */
  batchSize: number;
  /** Pipeline: `{kind: 'train', options: trainAugmentOptions(name)}` or `{kind: 'policy', dataset}`. */
  augment: LoaderAugment;
  /** Seed of the shuffles and of every augmentation. Default 0. */
  seed?: number;
  /** Shuffle the samples every epoch (the official loader does). Default true. */
  shuffle?: boolean;
  /** Drop the last partial batch. Default false, as the official loader. */
  dropLast?: boolean;
  /** Worker threads; 0 runs in the calling thread. Default max(1, cores - 1). */
  workers?: number;
  /** Batches requested ahead of the consumer. Default workers + 2. */
  prefetch?: number;
}

/** One batch: images [B,3,H,W] normalised float32, labels [B,H,W] (255 = ignore). */
export interface Batch {
  images: Float32Array;
  labels: Uint8Array;
  /** [B, 3, H, W]. */
  shape: [number, number, number, number];
  /** Sample ids and dataset indices, in batch order. */
  ids: string[];
  indices: number[];
  epoch: number;
  /** Batch number within the epoch. */
  step: number;
}

/** Where a run of batches starts, and how many epochs it spans (default: until the consumer stops). */
export interface IterateOptions {
  epoch?: number;
  step?: number;
  epochs?: number;
}

/** Mixes integers into a 32-bit seed (murmur3 finaliser per part): nearby inputs give unrelated streams. */
export function deriveSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    let k = Math.imul(p >>> 0, 0xcc9e2d51);
    k = Math.imul((k << 15) | (k >>> 17), 0x1b873593);
    h = Math.imul(((h ^ k) << 13) | ((h ^ k) >>> 19), 5) + 0xe6546b64;
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

const SHUFFLE = 1, SAMPLE = 2;

/**
 * Node flags for the workers: the parent's, minus the ones that describe an inline script (`node -e`,
 * `--input-type`), which would make every worker fail to start.
 */
function workerExecArgv(): string[] {
  const argv = process.execArgv, out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (['-e', '--eval', '-p', '--print', '--input-type'].includes(a)) i++;
    else if (!/^--(eval|print|input-type)=/.test(a)) out.push(a);
  }
  return out;
}

/** A bug in a worker: its one-line message, with the worker's stack for whoever debugs it. */
function workerBug(message: string, stack: string | undefined): Error {
  const e = new Error(`data worker failed: ${message}`);
  if (stack) e.stack = `${e.message}\n    in the worker: ${stack}`;
  return e;
}

interface Pending {
  resolve: (b: BuiltBatch) => void;
  reject: (e: Error) => void;
}

interface PoolWorker {
  worker: Worker;
  task?: number;
}

/** Loads batches of a dataset; create with {@link DataLoader.create}, release with {@link DataLoader.close}. */
export class DataLoader {
  /** Number of batches per epoch. */
  readonly stepsPerEpoch: number;
  private readonly seed: number;
  private readonly workersWanted: number;
  private readonly prefetch: number;
  private pool: PoolWorker[] | undefined;
  private queue: TaskMessage[] = [];
  private pending = new Map<number, Pending>();
  private nextId = 0;
  private failure: Error | undefined;
  private closed = false;

  private constructor(
    /** The dataset (opened in this thread to know its samples; workers open their own copy). */
    readonly dataset: SegDataset,
    private readonly ref: DatasetRef,
    private readonly opts: DataLoaderOptions,
  ) {
    const n = dataset.samples.length, b = opts.batchSize;
    if (!Number.isInteger(b) || b < 1) throw new CtsError(`batch size ${b} is invalid, expected a positive integer`);
    this.stepsPerEpoch = opts.dropLast ? Math.floor(n / b) : Math.ceil(n / b);
    if (this.stepsPerEpoch === 0) throw new CtsError(`dataset ${ref.name} ${ref.split} has ${n} samples, fewer than one batch of ${b} with dropLast`);
    outputSize(opts.augment); // validates the pipeline before any worker starts
    this.seed = opts.seed ?? 0;
    this.workersWanted = opts.workers ?? Math.max(1, availableParallelism() - 1);
    if (!Number.isInteger(this.workersWanted) || this.workersWanted < 0) throw new CtsError(`workers ${opts.workers} is invalid, expected an integer >= 0`);
    this.prefetch = Math.max(1, opts.prefetch ?? this.workersWanted + 2);
  }

  /**
   * Creates a loader over a dataset, given opened (its info.name, root and split identify it to the
   * workers, which reopen it with openDataset) or as the arguments of openDataset. A SegDataset that
   * openDataset cannot reopen (e.g. one built in memory) needs `workers: 0`.
   */
  static async create(source: SegDataset | DatasetRef, opts: DataLoaderOptions): Promise<DataLoader> {
    const ds = 'samples' in source ? source : await openDataset(source.name, source.root, source.split);
    return new DataLoader(ds, { name: ds.info.name, root: ds.root, split: ds.split }, opts);
  }

  /** The sample order of an epoch (a seeded Fisher-Yates shuffle, or 0..n-1 with shuffle off). */
  order(epoch: number): Int32Array {
    const n = this.dataset.samples.length, idx = new Int32Array(n);
    for (let i = 0; i < n; i++) idx[i] = i;
    if (this.opts.shuffle ?? true) {
      const rng = createRng(deriveSeed(this.seed, SHUFFLE, epoch));
      for (let i = n - 1; i > 0; i--) {
        const j = Math.floor(rng.uniform() * (i + 1));
        const t = idx[i]!;
        idx[i] = idx[j]!;
        idx[j] = t;
      }
    }
    return idx;
  }

  /** The batches of one epoch, from `startStep` on. */
  epoch(epoch: number, startStep = 0): AsyncGenerator<Batch> {
    return this.batches({ epoch, step: startStep, epochs: 1 });
  }

  /**
   * Batches from (epoch, step) on, across epoch boundaries, keeping `prefetch` batches in flight.
   * Breaking out of the loop cancels what was not started; close() releases the workers.
   */
  async *batches(from: IterateOptions = {}): AsyncGenerator<Batch> {
    const epoch = from.epoch ?? 0, step = from.step ?? 0;
    if (!Number.isInteger(epoch) || epoch < 0 || !Number.isInteger(step) || step < 0 || step >= this.stepsPerEpoch)
      throw new CtsError(`cannot start at epoch ${epoch}, step ${step}: expected epoch >= 0 and 0 <= step < ${this.stepsPerEpoch}`);
    const endEpoch = epoch + (from.epochs ?? Infinity);
    const orders = new Map<number, Int32Array>();
    const window: { epoch: number; step: number; indices: number[]; result: Promise<BuiltBatch>; id: number }[] = [];
    let reqEpoch = epoch, reqStep = step;
    const fill = () => {
      while (window.length < this.prefetch && reqEpoch < endEpoch) {
        if (!orders.has(reqEpoch)) orders.set(reqEpoch, this.order(reqEpoch));
        const order = orders.get(reqEpoch)!, b = this.opts.batchSize;
        const indices = Array.from(order.subarray(reqStep * b, Math.min((reqStep + 1) * b, order.length)));
        const items = indices.map((index) => ({ index, seed: deriveSeed(this.seed, SAMPLE, reqEpoch, index) }));
        const { id, result } = this.request(items);
        window.push({ epoch: reqEpoch, step: reqStep, indices, result, id });
        if (++reqStep === this.stepsPerEpoch) {
          orders.delete(reqEpoch);
          reqEpoch++;
          reqStep = 0;
        }
      }
    };
    try {
      fill();
      while (window.length > 0) {
        const head = window[0]!;
        const r = await head.result;
        window.shift();
        fill();
        const B = head.indices.length;
        yield {
          images: r.images,
          labels: r.labels,
          shape: [B, 3, r.height, r.width],
          ids: head.indices.map((i) => this.dataset.samples[i]!.id),
          indices: head.indices,
          epoch: head.epoch,
          step: head.step,
        };
      }
    } finally {
      for (const w of window) this.cancel(w.id);
    }
  }

  private request(items: BatchItem[]): { id: number; result: Promise<BuiltBatch> } {
    const id = this.nextId++;
    if (this.closed) return { id, result: Promise.reject(new CtsError('the data loader is closed')) };
    if (this.failure) return { id, result: Promise.reject(this.failure) };
    let result: Promise<BuiltBatch>;
    if (this.workersWanted === 0) {
      result = buildBatch(this.dataset, this.opts.augment, items);
    } else {
      result = new Promise<BuiltBatch>((resolve, reject) => this.pending.set(id, { resolve, reject }));
      this.queue.push({ type: 'batch', id, items });
      this.dispatch();
    }
    // A batch abandoned by its consumer must not surface as an unhandled rejection.
    result.catch(() => undefined);
    return { id, result };
  }

  private cancel(id: number): void {
    const q = this.queue.findIndex((t) => t.id === id);
    if (q >= 0) this.queue.splice(q, 1);
    this.pending.delete(id); // a running task finishes; its result is dropped
  }

  private startPool(): PoolWorker[] {
    const init: WorkerInit = { kind: 'cts-seg-data-worker', dataset: this.ref, augment: this.opts.augment };
    return Array.from({ length: this.workersWanted }, () => {
      const pw: PoolWorker = { worker: new Worker(new URL('./worker.js', import.meta.url), { workerData: init, execArgv: workerExecArgv() }) };
      pw.worker.on('message', (m: ReplyMessage) => this.onReply(pw, m));
      pw.worker.on('error', (e) => this.fail(new CtsError(`a data worker crashed: ${e.message}`, { cause: e })));
      pw.worker.on('exit', (code) => {
        if (!this.closed) this.fail(new CtsError(`a data worker exited unexpectedly (code ${code})`));
      });
      pw.worker.unref(); // idle workers never keep the process alive
      return pw;
    });
  }

  private dispatch(): void {
    this.pool ??= this.startPool();
    for (const pw of this.pool) {
      if (pw.task !== undefined) continue;
      const t = this.queue.shift();
      if (!t) return;
      pw.task = t.id;
      pw.worker.ref(); // busy: the process waits for the batch
      pw.worker.postMessage(t);
    }
  }

  private onReply(pw: PoolWorker, m: ReplyMessage): void {
    pw.task = undefined;
    pw.worker.unref();
    const p = this.pending.get(m.id);
    this.pending.delete(m.id);
    if (p) {
      if (m.type === 'done') p.resolve({ images: m.images, labels: m.labels, height: m.height, width: m.width });
      else p.reject(m.cts ? new CtsError(m.message) : workerBug(m.message, m.stack));
    }
    this.dispatch();
  }

  private fail(e: Error): void {
    if (this.failure || this.closed) return;
    this.failure = e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
    this.queue = [];
    void this.terminate();
  }

  private async terminate(): Promise<void> {
    const pool = this.pool ?? [];
    this.pool = [];
    // A worker terminated while busy in native code (sharp) holds no handle that keeps the event
    // loop alive until its exit event; without this timer the await below could never settle and
    // the process would quit with it unsettled (exit code 13), hiding any error being reported.
    const keepAlive = setInterval(() => undefined, 1000);
    try {
      await Promise.all(pool.map((pw) => (pw.worker.ref(), pw.worker.terminate())));
    } finally {
      clearInterval(keepAlive);
    }
  }

  /** Stops the workers; pending batches fail with a CtsError. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = new CtsError('the data loader is closed');
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    this.queue = [];
    await this.terminate();
  }
}
