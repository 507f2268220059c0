// Messages between the page's WorkerSegmenter and src/web/worker.ts. Everything in them is
// structured-cloneable: sources are absolute URLs, Blobs or bytes; images are raw pixels, already
// decoded on the page (the worker has no DOM to decode elements with).
import type { RawImage } from '../api/platform.js';
import type { LoadOptions, ModelSource, SegmentOptions, SegmentResult } from '../api/types.js';
import type { WebEnv } from './ort.js';

/** Load options that cross to the worker (functions cannot, and `worker` is implied). */
export type WorkerLoadOptions = Omit<LoadOptions, 'worker' | 'onFallback'>;

/** A request from the page. */
export type WorkerRequest =
  | { id: number; op: 'load'; source: ModelSource; options: WorkerLoadOptions; env: Pick<WebEnv, 'wasmPaths' | 'numThreads'> }
  | { id: number; op: 'segment'; image: RawImage; options: SegmentOptions }
  | { id: number; op: 'segmentBatch'; images: RawImage[]; options: SegmentOptions }
  | { id: number; op: 'dispose' };

/** A reply from the worker: a request's outcome, or a provider fallback message while loading. */
export type WorkerReply =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; name: string; message: string }
  | { op: 'fallback'; message: string };

/** The ArrayBuffers of a result, each once (a duplicate in a transfer list is an error). */
export function resultBuffers(results: readonly SegmentResult[]): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  const add = (a: ArrayBufferView | undefined) => {
    if (a && a.buffer instanceof ArrayBuffer) out.add(a.buffer);
  };
  for (const r of results) {
    add(r.classMap);
    add(r.maskShared);
    add(r.sharedFraction);
    add(r.probabilities);
    if (r.pictures) for (const p of Object.values(r.pictures)) add(p.data);
  }
  return [...out];
}
