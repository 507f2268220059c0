// The Web Worker behind `Segmenter.load(source, { worker: true })`: it loads the model with the same
// options (minus `worker`) on its own ONNX Runtime and answers segment, segmentBatch and dispose
// requests from the page's WorkerSegmenter. Result buffers are transferred, not copied.
import { CtsError } from '../base/errors.js';
import { Segmenter } from '../api/segmenter.js';
import { env } from './ort.js';
import './platform.js';
import { resultBuffers, type WorkerReply, type WorkerRequest } from './protocol.js';

interface WorkerScope {
  onmessage: ((e: MessageEvent<WorkerRequest>) => void) | null;
  postMessage(message: WorkerReply, transfer?: Transferable[]): void;
}

const scope = globalThis as unknown as WorkerScope;
let model: Segmenter | undefined;

async function handle(req: WorkerRequest): Promise<{ value: unknown; transfer?: Transferable[] }> {
  if (req.op === 'load') {
    if (model) throw new CtsError('this worker has already loaded a model');
    Object.assign(env, req.env);
    const onFallback = (message: string) => scope.postMessage({ op: 'fallback', message });
    model = await Segmenter.load(req.source, { ...req.options, onFallback });
    return { value: model.info };
  }
  if (req.op === 'dispose') {
    await model?.dispose();
    model = undefined;
    return { value: undefined };
  }
  if (!model) throw new CtsError('this Segmenter has been disposed');
  if (req.op === 'segment') {
    const r = await model.segment(req.image, req.options);
    return { value: r, transfer: resultBuffers([r]) };
  }
  const rs = await model.segmentBatch(req.images, req.options);
  return { value: rs, transfer: resultBuffers(rs) };
}

// requests are answered one at a time, in order: the model runs one image at a time anyway
let queue: Promise<void> = Promise.resolve();
scope.onmessage = (e) => {
  const req = e.data;
  queue = queue.then(async () => {
    try {
      const { value, transfer } = await handle(req);
      scope.postMessage({ id: req.id, ok: true, value }, transfer ?? []);
    } catch (err) {
      const x = err instanceof Error ? err : new Error(String(err));
      scope.postMessage({ id: req.id, ok: false, name: x.name, message: x.message });
    }
  });
};
