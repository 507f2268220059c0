// The Node entry point of cts-seg (`import { Segmenter } from 'cts-seg'`): registers onnxruntime-node
// and the Node platform (fs, fetch, sharp), then exposes the Segmenter API first and the library's
// lower layers after it. The browser entry point is src/web/index.ts (`cts-seg/web`).
import './node/register.js';

export { Segmenter, DEFAULT_WINDOW_BATCH, type PredictOptions } from './api/segmenter.js';
export type * from './api/types.js';
export { DEFAULT_MAX_PIXELS, type RawImage } from './api/platform.js';
export { PLATFORM_PROVIDERS, parseProvider, type Platform } from './runtime/providers.js';
export { resolveSharing, parsePolicy, POLICY_METHODS, type SharingSpec, type SharingOverrides, type PolicyMethod, type CtsSettings } from './cts/spec.js';
export { parseCheckpoint, serializeCheckpoint, type ModelCheckpoint } from './cts/checkpoint.js';
export { loadCheckpoint, saveCheckpoint } from './cts/checkpoint.node.js';
export { colorize, overlay, sharedView } from './eval/visualize.js';
export * from './graph/index.js';
export { CompiledGraph, runOnce, type CompileOptions, type Provider } from './runtime/session.js';
export * from './base/tensor.js';
export { CtsError } from './base/errors.js';
export { writeFileAtomic } from './io/fs.node.js';
export * from './io/safetensors.js';
export { readSafetensors, writeSafetensors } from './io/safetensors.node.js';
export * from './io/npy.js';
export { readNpz } from './io/npz.js';
export { openTorchFile, readTorchStateDict, TorchTensor, type TorchFile } from './io/torch.js';
export * from './nn/params.js';
export * as nn from './nn/layers.js';
export * from './models/config.js';
export * from './models/vit.js';
export * from './models/decoder.js';
export * from './models/segmenter.js';
export * from './models/weights.js';
export * from './models/init.js';
export * from './models/import.node.js';
export * as policyNet from './models/policynet.js';
export * from './cts/budget.js';
export * from './cts/sharing.js';
export * from './cts/policies.js';
export * from './cts/segmenter.js';
export * from './cts/forward.js';
export { runBench, type BenchOptions, type BenchResult } from './bench/bench.js';
export { sweepBudgets, budgetForReduction } from './bench/setup.js';
export { countMacs, nodeMacs, type MacCount } from './graph/macs.js';
export { segmenterMacs, type SegmenterMacs } from './cts/macs.js';
export { DataLoader, deriveSeed, type Batch, type DataLoaderOptions, type DatasetRef, type IterateOptions, type LoaderAugment } from './data/loader.js';
export {
  augmentPolicy, augmentTrain, POLICY_CROP, preprocessEval, TRAIN_AUGMENT, trainAugmentOptions,
  type AugmentDataset, type AugmentedSample, type Normalization, type TrainAugmentOptions,
} from './data/augment.js';
export * from './export/export.js';
export { normalizeRgb, rgbInput, type ExportNormalization } from './export/preprocess.js';
export { packWeights, type PackOptions, type PackedModels } from './export/weights.node.js';
export { toFloat16Bits, fromFloat16Bits } from './base/float16.js';
export { readOnnxWeights } from './export/readback.js';
