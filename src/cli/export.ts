// `cts-seg export`: the whole CTS pipeline of a checkpoint as one self-contained ONNX file.
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { CtsError } from '../base/errors.js';
import { describeFsError, writeFileAtomic } from '../io/fs.node.js';
import { loadCheckpoint } from '../cts/checkpoint.node.js';
import { exportModel, type ExportPolicy } from '../export/export.js';
import { action, nonNegInt, posInt } from './util.js';

interface ExportOpts {
  checkpoint: string;
  out: string;
  numShared?: number;
  policy?: string;
  withPreprocessing?: boolean;
  batch?: number;
  dynamicBatch?: boolean;
  size?: [number, number];
  classMapType: string;
}

const POLICIES: ExportPolicy[] = ['policy_net', 'no_sharing', 'policy_logits'];

function parseSize(v: string): [number, number] {
  const m = /^(\d+)(?:x(\d+))?$/.exec(v);
  if (!m || Number(m[1]) === 0 || (m[2] !== undefined && Number(m[2]) === 0)) throw new InvalidArgumentError(`--size expects HxW or N (pixels), got '${v}'`);
  return [Number(m[1]), Number(m[2] ?? m[1])];
}

/** Registers the `export` command. */
export function registerExport(program: Command): void {
  program
    .command('export')
    .description('export a checkpoint as ONE ONNX graph (policy net, top-S selection, sharing, ViT, decoder, unsharing) with outputs logits [B,K,H,W], class_map [B,H,W] and mask_shared [B,H/32,W/32]; classes, palette, normalisation, crop and token budget go into the metadata')
    .requiredOption('--checkpoint <file>', 'model checkpoint (.safetensors from train, init or demo)')
    .requiredOption('--out <file>', 'ONNX file to write (e.g. model.onnx)')
    .option('--num-shared <S>', 'shared superpatches per image (default: the checkpoint\'s budget; 0 = no sharing)', nonNegInt('--num-shared'))
    .option('--policy <name>', 'policy_net (the policy network inside the graph; default when the checkpoint has one), no_sharing (plain Segmenter), or policy_logits (a second input policy_logits [B,2,H/32,W/32])')
    .option('--with-preprocessing', 'input is uint8 RGB [B,H,W,3] (canvas ImageData without alpha) and the graph casts, transposes and normalises; default: normalised float32 [B,3,H,W]')
    .option('--batch <n>', 'static batch size of the graph (default 1)', posInt('--batch'))
    .option('--dynamic-batch', 'symbolic batch dimension "batch" instead: the batch-1 graph runs once per image inside an ONNX Loop')
    .option('--size <HxW>', 'input size in pixels (default: the checkpoint\'s crop size)', parseSize)
    .option('--class-map-type <t>', 'dtype of class_map: uint8 (up to 256 classes) or int64', 'uint8')
    .action(action(runExport));
}

async function runExport(o: ExportOpts): Promise<void> {
  if (o.policy !== undefined && !POLICIES.includes(o.policy as ExportPolicy)) {
    throw new CtsError(`--policy must be one of ${POLICIES.join(', ')}, got '${o.policy}'`);
  }
  if (o.classMapType !== 'uint8' && o.classMapType !== 'int64') throw new CtsError(`--class-map-type must be uint8 or int64, got '${o.classMapType}'`);
  const ckpt = await loadCheckpoint(o.checkpoint);
  const t0 = performance.now();
  const m = exportModel(ckpt, {
    ...(o.batch !== undefined ? { batch: o.batch } : {}),
    dynamicBatch: !!o.dynamicBatch,
    withPreprocessing: !!o.withPreprocessing,
    classMapType: o.classMapType,
    ...(o.numShared !== undefined ? { numShared: o.numShared } : {}),
    ...(o.policy !== undefined ? { policy: o.policy as ExportPolicy } : {}),
    ...(o.size ? { size: o.size } : {}),
  });
  try {
    await mkdir(dirname(o.out), { recursive: true });
  } catch (e) {
    throw new CtsError(`cannot create the folder of ${o.out}: ${describeFsError(e)}`);
  }
  await writeFileAtomic(o.out, m.bytes);
  const io = (l: typeof m.inputs) => l.map((t) => `${t.name} ${t.dtype}[${t.shape.join(',')}]`).join(', ');
  const b = m.budget;
  process.stdout.write(
    `wrote ${o.out} (${(m.bytes.length / 1e6).toFixed(2)} MB, ${((performance.now() - t0) / 1000).toFixed(1)} s): ` +
      `policy ${m.policy}, ${b.numTokens} tokens per image${b.numShared ? ` (${b.numShared} shared superpatches, ${b.gh * b.gw} without sharing)` : ''}; ` +
      `inputs ${io(m.inputs)}; outputs ${io(m.outputs)}\n`,
  );
}
