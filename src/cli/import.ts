// `cts-seg import-weights`: pretrained weights from the Python world (timm/AugReg .npz, PyTorch
// .pth state dicts) converted to a safetensors file in cts-seg's official names.
import cliProgress from 'cli-progress';
import { InvalidArgumentError, type Command } from 'commander';
import { CtsError } from '../base/errors.js';
import { writeSafetensors } from '../io/safetensors.node.js';
import { IMPORT_KINDS, importedParamCount, importWeights, type ImportKind } from '../models/import.node.js';
import { importOfficialRunCli } from './official.js';
import { action } from './util.js';

interface ImportOpts {
  out: string;
  kind?: ImportKind;
  grid?: [number, number];
}

function parseKind(v: string): ImportKind {
  if (!(IMPORT_KINDS as readonly string[]).includes(v)) throw new InvalidArgumentError(`--kind expects one of ${IMPORT_KINDS.join(', ')}, got '${v}'`);
  return v as ImportKind;
}

function parseGrid(v: string, prev: number[] | undefined): [number, number] {
  if (!/^\d+$/.test(v) || Number(v) === 0) throw new InvalidArgumentError(`--grid expects two positive integers H W, got '${v}'`);
  if (prev && prev.length >= 2) throw new InvalidArgumentError(`--grid expects two positive integers H W, got a third ('${v}')`);
  return [...(prev ?? []), Number(v)] as [number, number];
}

/** Registers the `import-weights` command. */
export function registerImport(program: Command): void {
  program
    .command('import-weights')
    .description('convert pretrained weights from the Python world into cts-seg names: a timm/AugReg ViT .npz, or a PyTorch .pth state dict of a Segmenter, a timm ViT or the CTS policy net; only plain tensors are unpickled, anything else is refused')
    .argument('<src>', 'source file (.npz, or .pth/.pt from torch.save, zip or legacy format; {"model": ...} / {"state_dict": ...} checkpoints are unwrapped)')
    .requiredOption('--out <file>', 'output .safetensors file (written atomically; metadata records the kind, source and, for .npz, n_heads)')
    .option('--kind <kind>', `source format: ${IMPORT_KINDS.join(' | ')} (default: vit-npz for .npz, else detected from the key names)`, parseKind)
    .option('--grid <n...>', 'resize encoder.pos_embed to H W patches (bilinear, align_corners=False, CLS kept), e.g. --grid 32 32 for 512 crops with patch 16; put SRC before this option', parseGrid)
    .action(action(runImport));
}

/** Progress over tensors: a bar on an interactive stderr, else a line every 100 tensors. */
function progress(): { tick: (done: number, total: number) => void; stop: () => void } {
  let bar: cliProgress.SingleBar | undefined;
  return {
    tick(done, total) {
      if (process.stderr.isTTY && !process.env.CI) {
        if (!bar) {
          bar = new cliProgress.SingleBar({ stream: process.stderr, format: 'reading {bar} {value}/{total} tensors' }, cliProgress.Presets.shades_classic);
          bar.start(total, 0);
        }
        bar.update(done);
      } else if (done % 100 === 0 || done === total) process.stderr.write(`read ${done}/${total} tensors\n`);
    },
    stop: () => bar?.stop(),
  };
}

async function runImport(src: string, o: ImportOpts): Promise<void> {
  if (o.grid && o.grid.length !== 2) throw new CtsError(`--grid expects two positive integers H W, got ${o.grid.length}`);
  if (!/\.safetensors$/i.test(o.out)) throw new CtsError(`--out ${o.out}: expected a .safetensors file name`);
  if (!o.kind && !o.grid && (await importOfficialRunCli(src, o.out))) return;
  const bar = progress();
  let result;
  try {
    result = await importWeights(src, { ...(o.kind ? { kind: o.kind } : {}), ...(o.grid ? { grid: o.grid } : {}), onProgress: bar.tick });
  } finally {
    bar.stop();
  }
  await writeSafetensors(o.out, result.tensors, result.metadata);
  const { report } = result;
  const lines = [`imported ${result.tensors.size} tensors (${importedParamCount(result).toLocaleString('en-US')} values) from ${src} as ${report.kind} into ${o.out}`];
  if (report.dropped.length) lines.push(`dropped ${report.dropped.length}: ${report.dropped.slice(0, 8).join(', ')}${report.dropped.length > 8 ? ', …' : ''}`);
  for (const n of report.notes) lines.push(`note: ${n}`);
  if (report.kind === 'segmenter-pth') lines.push('note: no variant.yml was read: the model configuration is inferred from the tensor shapes when loaded (heads d_model/64, generic class names, ViT normalisation)');
  process.stdout.write(`${lines.join('\n')}\n`);
}
