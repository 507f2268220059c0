// `cts-seg export-weights`, and the official-run branch of `import-weights`: checkpoints that move
// both ways between cts-seg and the official PyTorch code (rstrudel/segmenter, tue-mps/cts-segmenter).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { CtsError } from '../base/errors.js';
import { loadCheckpoint, saveCheckpoint } from '../cts/checkpoint.node.js';
import { writeSafetensors } from '../io/safetensors.node.js';
import { officialStateDict } from '../export/official.js';
import { exportOfficialRun, importOfficialRun } from '../export/official.node.js';
import { action } from './util.js';

const FORMATS = ['official', 'safetensors'] as const;
type Format = (typeof FORMATS)[number];

interface ExportWeightsOpts {
  checkpoint: string;
  format: Format;
  out: string;
}

function parseFormat(v: string): Format {
  if (!(FORMATS as readonly string[]).includes(v)) throw new InvalidArgumentError(`--format expects one of ${FORMATS.join(', ')}, got '${v}'`);
  return v as Format;
}

const printNote = (m: string) => process.stdout.write(`note: ${m}\n`);

/**
 * The import-weights path for an official run directory: when `src` has a variant.yml beside it,
 * imports the run as a full cts-seg checkpoint into `out` and returns true; else returns false and
 * the caller imports the bare state dict.
 */
export async function importOfficialRunCli(src: string, out: string): Promise<boolean> {
  if (/\.npz$/i.test(src) || !existsSync(join(dirname(src), 'variant.yml'))) return false;
  const ckpt = await importOfficialRun(src, { onNote: printNote });
  await saveCheckpoint(out, ckpt);
  const c = ckpt.config;
  const cts = ckpt.cts.policy === 'policy_net' ? `, CTS policy_net with S=${ckpt.cts.numShared}` : '';
  process.stdout.write(`imported the official run ${src} (with variant.yml) into ${out}: ${c.backbone}, d_model ${c.d_model}, ${c.n_layers} layers, ${c.n_heads} heads, ` +
    `${c.decoder} decoder, ${c.n_cls} classes${ckpt.dataset ? ` (${ckpt.dataset})` : ''}, crop ${ckpt.cropSize.join('x')}${cts}\n`);
  return true;
}

async function runExportWeights(o: ExportWeightsOpts): Promise<void> {
  if (o.format === 'safetensors' && !/\.safetensors$/i.test(o.out)) throw new CtsError(`--out ${o.out}: expected a .safetensors file name for --format safetensors`);
  if (o.format === 'official' && /\.(pth|pt|safetensors)$/i.test(o.out)) throw new CtsError(`--out ${o.out}: --format official writes a directory (checkpoint.pth + variant.yml), give its name`);
  const ckpt = await loadCheckpoint(o.checkpoint);
  if (o.format === 'safetensors') {
    const sd = officialStateDict(ckpt);
    await writeSafetensors(o.out, sd);
    process.stdout.write(`wrote ${sd.size} tensors in the official names to ${o.out}\n`);
    return;
  }
  const r = await exportOfficialRun(ckpt, o.out, { onNote: printNote });
  process.stdout.write(`wrote ${r.checkpoint} (${r.tensors} tensors) and ${r.variant}: segm.model.factory.load_model('${r.checkpoint}') rebuilds the model\n`);
}

/** Registers the `export-weights` command. */
export function registerExportWeights(program: Command): void {
  program
    .command('export-weights')
    .description('write a checkpoint for the official PyTorch code: a run directory (checkpoint.pth + variant.yml) that segm.model.factory.load_model loads, or the state dict in the official names as safetensors')
    .requiredOption('--checkpoint <file>', 'model checkpoint (.safetensors from train, init, demo or import-weights)')
    .option('--format <format>', `official (a run directory) | safetensors (official names)`, parseFormat, 'official' as Format)
    .requiredOption('--out <path>', 'directory for --format official, .safetensors file for --format safetensors (written atomically)')
    .action(action(runExportWeights));
}
