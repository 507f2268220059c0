// One-graph ONNX export of the whole CTS pipeline: (optional uint8 preprocessing) -> policy network ->
// top-S superpatch selection -> sharing -> ViT encoder -> decoder -> unsharing -> logits and class
// map. Everything is in the graph with the weights as initializers, so the file runs unchanged in
// onnxruntime-node, onnxruntime-web and Python onnxruntime with no cts-seg code around it. The
// metadata_props carry what a consumer needs to use it (classes, palette, normalisation, crop,
// token budget).
import { EMIT_TARGETS, Graph, argMax, cast, emitOnnx, type EmitTarget, type Value } from '../graph/index.js';
import { CtsError } from '../base/errors.js';
import type { DType } from '../base/tensor.js';
import { constantParams, type Precision } from '../nn/params.js';
import type { ModelCheckpoint } from '../cts/checkpoint.js';
import { buildCtsSegmenter, type PolicySource } from '../cts/segmenter.js';
import type { TokenBudget } from '../cts/budget.js';
import { resolveSharing, type PolicyMethod } from '../cts/spec.js';
import { checkGraphMemory } from '../cts/memory.js';
import { rgbInput } from './preprocess.js';
import { BATCH_DIM, dynamicBatch } from './batch.js';

/** Format tag written to the `format` metadata property; bumped when names or meanings change. */
export const EXPORT_FORMAT = 'cts-seg-onnx/1';

/**
 * Where the exported graph's sharing decision comes from:
 * - `policy_net`: the policy network inside the graph (needs `policy_net.*` weights);
 * - `no_sharing`: the plain Segmenter (every patch is a token);
 * - `policy_logits`: a second input `policy_logits` [B,2,H/32,W/32] (policies computed elsewhere).
 */
export type ExportPolicy = 'policy_net' | 'no_sharing' | 'policy_logits';

/** Options of exportModel. */
export interface ExportOptions {
  /** Shared superpatches S (default: the checkpoint's budget; ignored for no_sharing). */
  numShared?: number;
  /** Default: policy_net when the checkpoint's policy is the network, else no_sharing. */
  policy?: ExportPolicy;
  /** Input is uint8 RGB [B,H,W,3] and the graph normalises; otherwise normalised float32 [B,3,H,W]. */
  withPreprocessing?: boolean;
  /** Static batch size (default 1). */
  batch?: number;
  /** Symbolic batch dimension `batch` instead (the batch-1 graph looped over the images; see batch.ts). */
  dynamicBatch?: boolean;
  /** Input (height, width) (default: the checkpoint's crop). */
  size?: [number, number];
  /** dtype of `class_map` (default uint8, which holds up to 256 classes). */
  classMapType?: 'uint8' | 'int64';
  /** float32 (default) or int8 products (see constantParams; about a quarter of the file). */
  precision?: Precision;
  /** Largest estimated graph memory in bytes (default: the machine's memory, see cts/memory.ts). */
  maxMemory?: number;
  /**
   * The ONNX Runtime build the file is tuned for (default 'cpu'): 'wasm' picks onnxruntime-web's
   * faster formulations (see EmitTarget). Either file runs on every build; recorded in the metadata.
   */
  target?: EmitTarget;
}

/** Name, shape and dtype of one graph input or output ('batch' for a symbolic batch dimension). */
export interface TensorSpec {
  name: string;
  shape: (number | string)[];
  dtype: DType;
}

/** A built export graph and its description. */
export interface ExportGraph {
  graph: Graph;
  /** metadata_props written into the model. */
  metadata: Record<string, string>;
  budget: TokenBudget;
  policy: ExportPolicy;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
}

/** The export's policies, in the order the CLI lists them. */
export const EXPORT_POLICIES: readonly ExportPolicy[] = ['policy_net', 'no_sharing', 'policy_logits'];

/**
 * Resolves the policy and budget that an export of `ckpt` will use (CtsError for impossible ones),
 * by resolveSharing's rules. `policy_logits` is the network's decision computed outside the graph:
 * it resolves as policy_net, with the logits from an input instead of weights.
 */
export function resolveExportPolicy(ckpt: ModelCheckpoint, o: ExportOptions): { policy: ExportPolicy; numShared: number; budget: TokenBudget } {
  if (o.policy !== undefined && !EXPORT_POLICIES.includes(o.policy)) {
    throw new CtsError(`export policy must be ${EXPORT_POLICIES.slice(0, -1).join(', ')} or ${EXPORT_POLICIES.at(-1)}, got '${String(o.policy)}'`);
  }
  const stored = ckpt.cts.policy;
  const fromInput = o.policy === 'policy_logits';
  // a graph can hold only the network's decision: a checkpoint of the oracle or random policy (which
  // need labels or a seed per call) exports as the plain Segmenter unless a policy is asked for
  const asked: PolicyMethod | undefined = o.policy === 'policy_logits' ? 'policy_net' : (o.policy ?? (stored === 'policy_net' ? undefined : 'no_sharing'));
  let spec;
  try {
    spec = resolveSharing(ckpt.cts, { policy: asked, numShared: o.numShared }, { size: o.size ?? ckpt.cropSize, patchSize: ckpt.config.patch_size, storedSize: ckpt.cropSize });
  } catch (e) {
    // the user asked for policy_logits: name that, not the policy_net it resolves as
    if (fromInput && e instanceof CtsError) e.message = e.message.replace('the policy_net policy', 'the policy_logits policy');
    throw e;
  }
  if (spec.policy === 'policy_net' && !fromInput && !ckpt.weights.has('policy_net.head.weight')) {
    throw new CtsError(`the policy_net policy needs policy-network weights (policy_net.*) in the checkpoint, whose policy is ${stored}; ` +
      'export with --policy no_sharing or --policy policy_logits');
  }
  const policy: ExportPolicy = spec.policy === 'no_sharing' ? 'no_sharing' : fromInput ? 'policy_logits' : 'policy_net';
  return { policy, numShared: spec.numShared, budget: spec.budget };
}

/** Builds the export graph for a checkpoint (nothing is serialised yet). */
export function buildExportGraph(ckpt: ModelCheckpoint, o: ExportOptions = {}): ExportGraph {
  if (o.dynamicBatch && o.batch !== undefined && o.batch !== 1) throw new CtsError(`a dynamic batch and a static batch of ${o.batch} exclude each other`);
  const batch = o.batch ?? 1;
  if (!Number.isInteger(batch) || batch < 1) throw new CtsError(`batch must be a positive integer, got ${batch}`);
  const [h, w] = o.size ?? ckpt.cropSize;
  const K = ckpt.config.n_cls;
  if (o.target !== undefined && !EMIT_TARGETS.includes(o.target)) throw new CtsError(`unknown export target '${String(o.target)}': expected ${EMIT_TARGETS.join(' or ')}`);
  const classMapType = o.classMapType ?? 'uint8';
  if (classMapType === 'uint8' && K > 256) throw new CtsError(`a uint8 class map holds 256 classes, the model has ${K}: use int64`);
  const { policy, numShared, budget } = resolveExportPolicy(ckpt, o);
  // a dynamic batch loops the batch-1 graph: one image's memory is what it needs at a time
  checkGraphMemory(ckpt.config, { size: [h, w], batch: o.dynamicBatch ? 1 : batch, tokens: budget.numTokens }, o.maxMemory, 'the export');

  const g = new Graph();
  let x: Value;
  let input: Value;
  if (o.withPreprocessing) ({ input, x } = rgbInput(g, 'input', batch, h, w, ckpt.normalization));
  else x = input = g.input('input', [batch, 3, h, w], 'float32');
  let source: PolicySource | undefined;
  let logitsIn: Value | undefined;
  if (numShared > 0) {
    if (policy === 'policy_net') {
      source = { kind: 'policy_net', bnMode: 'eval', ...(ckpt.cts.policyWidth !== undefined ? { width: ckpt.cts.policyWidth } : {}) };
    } else {
      const sp = 2 * ckpt.config.patch_size; // the size is a multiple of sp: resolveSharing checked the budget
      logitsIn = g.input('policy_logits', [batch, 2, h / sp, w / sp], 'float32');
      source = { kind: 'logits', logits: logitsIn };
    }
  }
  const out = buildCtsSegmenter(x, constantParams(g, ckpt.weights, { precision: o.precision ?? 'fp32' }), ckpt.config, { numShared, ...(source ? { policy: source } : {}) });
  const classMap = argMax(out.logits, 1, false);
  g.output('logits', out.logits);
  g.output('class_map', classMapType === 'uint8' ? cast(classMap, 'uint8') : classMap);
  if (out.plan) g.output('mask_shared', out.plan.maskShared);

  const spec = (name: string, v: Value): TensorSpec => ({ name, shape: [o.dynamicBatch ? BATCH_DIM : v.shape[0]!, ...v.shape.slice(1)], dtype: v.dtype });
  const inputs = [spec('input', input), ...(logitsIn ? [spec('policy_logits', logitsIn)] : [])];
  const outputs = g.outputs.map((o) => spec(o.name, o.value));
  const b = out.budget;
  const metadata: Record<string, string> = {
    format: EXPORT_FORMAT,
    classes: JSON.stringify(ckpt.classes),
    palette: JSON.stringify(ckpt.palette),
    normalization: JSON.stringify(ckpt.normalization),
    crop_size: JSON.stringify([h, w]),
    input_format: o.withPreprocessing ? 'uint8_rgb_nhwc' : 'float32_normalized_nchw',
    batch: o.dynamicBatch ? BATCH_DIM : String(batch),
    policy,
    num_shared: String(numShared),
    precision: o.precision ?? 'fp32',
    target: o.target ?? 'cpu',
    num_tokens: String(b.numTokens),
    num_patches: String(b.gh * b.gw),
    patch_size: String(ckpt.config.patch_size),
    config: JSON.stringify(ckpt.config),
    inputs: JSON.stringify(inputs),
    outputs: JSON.stringify(outputs),
    ...(ckpt.dataset ? { dataset: ckpt.dataset } : {}),
  };
  return { graph: g, metadata, budget: b, policy, inputs, outputs };
}

/** A serialised export. */
export interface ExportedModel extends Omit<ExportGraph, 'graph'> {
  /** The ONNX ModelProto bytes. */
  bytes: Uint8Array;
}

/** Builds and serialises the one-graph ONNX model of a checkpoint. */
export function exportModel(ckpt: ModelCheckpoint, o: ExportOptions = {}): ExportedModel {
  const { graph, ...rest } = buildExportGraph(ckpt, o);
  const bytes = emitOnnx(graph, { metadata: rest.metadata, name: 'cts_seg', target: rest.metadata.target as EmitTarget });
  return { ...rest, bytes: o.dynamicBatch ? dynamicBatch(bytes) : bytes };
}
