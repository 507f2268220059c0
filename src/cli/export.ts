// `cts-seg export`: the whole CTS pipeline of a checkpoint as one self-contained ONNX file.
import { dirname } from 'node:path';
import type { Command } from 'commander';
import { CtsError } from '../base/errors.js';
import { makeOutputDir, removeCreatedDir, writeFileAtomic } from '../io/fs.node.js';
import { loadCheckpoint } from '../cts/checkpoint.node.js';
import { EXPORT_POLICIES, exportModel, type ExportPolicy } from '../export/export.js';
import { EMIT_TARGETS, type EmitTarget } from '../graph/ir.js';
import { action, posInt } from './util.js';
import { modelFile } from './model_file.js';
import { checkpointOption, modelOption, cropSizeOption, numSharedOption, outOption, policyOption, precisionOption, checkWeightsOption, maxMemoryOption } from './options.js';
import type { Precision } from '../nn/params.js';

interface ExportOpts {
  checkpoint: string;
  model?: string;
  out: string;
  numShared?: number;
  policy?: ExportPolicy;
  withPreprocessing?: boolean;
  batch?: number;
  dynamicBatch?: boolean;
  cropSize?: [number, number];
  classMapType: string;
  precision: Precision;
  maxMemory?: number;
  checkWeights: boolean;
  target: EmitTarget;
}

/** Registers the `export` command. */
export function registerExport(program: Command): void {
  const cmd = program
    .command('export')
    .description('export a checkpoint as ONE ONNX graph (policy net, top-S selection, sharing, ViT, decoder, unsharing) with outputs logits [B,K,H,W], class_map [B,H,W] and mask_shared [B,H/32,W/32]; classes, palette, normalisation, crop and token budget go into the metadata');
  checkpointOption(cmd);
  modelOption(cmd);
  outOption(cmd, 'ONNX file to write (e.g. model.onnx)', { required: true });
  numSharedOption(cmd, { note: 'default: the checkpoint\'s budget' });
  policyOption(cmd, { choices: EXPORT_POLICIES, note: 'default: policy_net when the checkpoint has one, else no_sharing' });
  cmd
    .option('--with-preprocessing', 'input is uint8 RGB [B,H,W,3] (canvas ImageData without alpha) and the graph casts, transposes and normalises; default: normalised float32 [B,3,H,W]')
    .option('--batch <n>', 'static batch size of the graph (default 1)', posInt('--batch'))
    .option('--dynamic-batch', 'symbolic batch dimension "batch" instead: the batch-1 graph runs once per image inside an ONNX Loop');
  cropSizeOption(cmd, { note: 'the input size of the graph; default: the checkpoint\'s crop', aliases: ['--size'] });
  precisionOption(cmd, { note: 'int8 files are about a quarter of fp32 ones; recorded in the metadata' });
  cmd
    .option('--class-map-type <t>', 'dtype of class_map: uint8 (up to 256 classes) or int64', 'uint8')
    .option('--target <build>', `ONNX Runtime build the file is tuned for: cpu (onnxruntime-node, and its GPU providers) or wasm (onnxruntime-web's CPU build, e.g. a web page: LayerNorm as elementwise ops, ~1.9x faster there); the file runs on both; recorded in the metadata`, parseTarget, 'cpu');
  maxMemoryOption(cmd);
  checkWeightsOption(cmd);
  cmd.action(action(runExport));
}

function parseTarget(v: string): EmitTarget {
  if (!(EMIT_TARGETS as readonly string[]).includes(v)) throw new CtsError(`unknown --target '${v}': expected ${EMIT_TARGETS.join(' or ')}`);
  return v as EmitTarget;
}

async function runExport(o: ExportOpts): Promise<void> {
  if (o.classMapType !== 'uint8' && o.classMapType !== 'int64') throw new CtsError(`--class-map-type must be uint8 or int64, got '${o.classMapType}'`);
  o.checkpoint = (await modelFile(o))!;
  const ckpt = await loadCheckpoint(o.checkpoint, { checkWeights: o.checkWeights });
  const t0 = performance.now();
  const m = exportModel(ckpt, {
    ...(o.batch !== undefined ? { batch: o.batch } : {}),
    dynamicBatch: !!o.dynamicBatch,
    withPreprocessing: !!o.withPreprocessing,
    classMapType: o.classMapType,
    precision: o.precision,
    target: o.target,
    ...(o.numShared !== undefined ? { numShared: o.numShared } : {}),
    ...(o.policy !== undefined ? { policy: o.policy } : {}),
    ...(o.cropSize ? { size: o.cropSize } : {}),
    ...(o.maxMemory !== undefined ? { maxMemory: o.maxMemory } : {}),
  });
  const created = await makeOutputDir(dirname(o.out), `the folder of ${o.out}:`);
  try {
    await writeFileAtomic(o.out, m.bytes);
  } catch (e) {
    await removeCreatedDir(created);
    throw e;
  }
  const io = (l: typeof m.inputs) => l.map((t) => `${t.name} ${t.dtype}[${t.shape.join(',')}]`).join(', ');
  const b = m.budget;
  process.stdout.write(
    `wrote ${o.out} (${(m.bytes.length / 1e6).toFixed(2)} MB, ${((performance.now() - t0) / 1000).toFixed(1)} s): ` +
      `policy ${m.policy}, ${b.numTokens} tokens per image${b.numShared ? ` (${b.numShared} shared superpatches, ${b.gh * b.gw} without sharing)` : ''}; ${m.metadata.precision} Linear layers; for the ${m.metadata.target} build; ` +
      `inputs ${io(m.inputs)}; outputs ${io(m.outputs)}\n`,
  );
}
