// Public library surface of cts-seg.
export * from './graph/index.js';
export { CompiledGraph, runOnce, type CompileOptions, type Provider } from './runtime/session.js';
export * from './base/tensor.js';
export { CtsError } from './base/errors.js';
export { writeFileAtomic } from './io/fs.node.js';
export * from './io/safetensors.js';
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
export * from './models/import.js';
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
export { packWeights, toFloat16Bits, fromFloat16Bits, type PackOptions, type PackedModels } from './export/weights.js';
