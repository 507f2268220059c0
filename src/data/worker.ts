// Batch building for the DataLoader, run in worker_threads (or in-process with workers = 0).
// A worker opens the dataset itself from (name, root, split): datasets hold functions and file handles
// that cannot cross a thread boundary, while those three strings can. Each task is a whole batch, so the
// finished image and label buffers are transferred to the main thread as they are, never copied there.
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { CtsError } from '../base/errors.js';
import { createRng } from '../base/rng.js';
import { POLICY_CROP, augmentPolicy, augmentTrain, type AugmentDataset, type TrainAugmentOptions } from './augment.js';
import { openDataset } from './datasets.js';
import type { SegDataset } from './types.js';

/** How a worker finds a dataset: the arguments of openDataset. */
export interface DatasetRef {
  name: string;
  root: string;
  split: string;
}

/** Which pipeline a loader runs: the training augmentation (spec §5.3) or the policy-net one (§2.3). */
export type LoaderAugment = { kind: 'train'; options: TrainAugmentOptions } | { kind: 'policy'; dataset: AugmentDataset };

/** One sample of a batch task: its dataset index and the seed of its augmentation stream. */
export interface BatchItem {
  index: number;
  seed: number;
}

/** A finished batch: images [B,3,H,W] and labels [B,H,W]. */
export interface BuiltBatch {
  images: Float32Array;
  labels: Uint8Array;
  height: number;
  width: number;
}

/** Output size [height, width] of every sample of a pipeline. */
export function outputSize(augment: LoaderAugment): [number, number] {
  if (augment.kind === 'train') return augment.options.cropSize;
  const s = POLICY_CROP[augment.dataset];
  if (s === undefined) throw new CtsError(`no policy-net pipeline for dataset "${augment.dataset}": expected one of ${Object.keys(POLICY_CROP).join(', ')}`);
  return [s, s];
}

/** Reads, augments and stacks the given samples; each sample's randomness is createRng(item.seed) alone. */
export async function buildBatch(ds: SegDataset, augment: LoaderAugment, items: BatchItem[]): Promise<BuiltBatch> {
  const [h, w] = outputSize(augment);
  const images = new Float32Array(items.length * 3 * h * w), labels = new Uint8Array(items.length * h * w);
  for (let b = 0; b < items.length; b++) {
    const { index, seed } = items[b]!;
    const [img, lbl] = await Promise.all([ds.readImage(index), ds.readLabel(index)]);
    const rng = createRng(seed);
    const s = augment.kind === 'train' ? augmentTrain(img, lbl, augment.options, rng) : augmentPolicy(img, lbl, augment.dataset, rng);
    images.set(s.image, b * 3 * h * w);
    labels.set(s.label, b * h * w);
  }
  return { images, labels, height: h, width: w };
}

/** workerData of a data worker. */
export interface WorkerInit {
  kind: 'cts-seg-data-worker';
  dataset: DatasetRef;
  augment: LoaderAugment;
}

/** Main thread -> worker. */
export interface TaskMessage {
  type: 'batch';
  id: number;
  items: BatchItem[];
}

/**
 * Worker -> main thread. `cts` tells whether the error is a user-facing CtsError (e.g. a corrupt
 * file), rebuilt as one on the other side; `stack` is a bug's worker stack, kept apart from its
 * one-line message.
 */
export type ReplyMessage =
  | { type: 'done'; id: number; images: Float32Array; labels: Uint8Array; height: number; width: number }
  | { type: 'error'; id: number; message: string; cts: boolean; stack?: string };

function runWorker(init: WorkerInit): void {
  const port = parentPort!;
  const ds = openDataset(init.dataset.name, init.dataset.root, init.dataset.split);
  // A dataset that fails to open fails every task with its own message; nothing is left unhandled.
  ds.catch(() => undefined);
  // Tasks run one after another: the pool hands a worker one batch at a time.
  let chain = Promise.resolve();
  port.on('message', (msg: TaskMessage) => {
    chain = chain.then(async () => {
      try {
        const b = await buildBatch(await ds, init.augment, msg.items);
        const reply: ReplyMessage = { type: 'done', id: msg.id, ...b };
        port.postMessage(reply, [b.images.buffer as ArrayBuffer, b.labels.buffer as ArrayBuffer]);
      } catch (e) {
        const cts = e instanceof CtsError;
        const message = String((e as Error)?.message ?? e).split('\n')[0]!;
        const reply: ReplyMessage = { type: 'error', id: msg.id, message, cts, ...(cts ? {} : { stack: String((e as Error)?.stack ?? e) }) };
        port.postMessage(reply);
      }
    });
  });
}

if (!isMainThread && (workerData as WorkerInit | undefined)?.kind === 'cts-seg-data-worker') runWorker(workerData as WorkerInit);
