// `cts-seg bench-train`: times a Segmenter training step, optionally next to PyTorch (same run).
import type { Command } from 'commander';
import { benchTrainStep, benchTrainVsPytorch, type TrainBenchOptions } from '../bench/train.js';
import { BACKBONE_ALIASES } from '../models/config.js';
import { parsePytorchMalloc } from '../bench/pytorch.js';
import { CtsError } from '../base/errors.js';
import { action, nonNegInt, posInt } from './util.js';
import { cropSizeOption, numSharedOption, threadsOption } from './options.js';

/** Registers `bench-train`. */
export function registerBenchTrain(program: Command): void {
  const cmd = program
    .command('bench-train')
    .description('time one Segmenter training step (forward + backward + SGD update), optionally against PyTorch in the same run')
    .option('--backbone <name>', 'vit-ti, vit-s, vit-b, vit-l', 'vit-s')
    .option('--decoder <kind>', 'mask_transformer or linear', 'mask_transformer');
  cropSizeOption(cmd, { square: true, default: 512, aliases: ['--image-size'] });
  cmd
    .option('--classes <k>', 'number of classes', posInt('--classes'), 150)
    .option('--batch <n>', 'images per step', posInt('--batch'), 2)
    .option('--warmup <n>', 'untimed steps first', nonNegInt('--warmup'), 2)
    .option('--steps <n>', 'timed steps', posInt('--steps'), 10);
  numSharedOption(cmd, { note: 'the policy network in the graph', default: 0 });
  cmd.option('--no-stochastic', 'without decoder dropout and drop-path (what the PyTorch reference model has)');
  threadsOption(cmd, { note: 'for both frameworks' });
  cmd
    .option('--rss-every <n>', 'print resident memory every n steps (memory-flatness check)', posInt('--rss-every'))
    .option('--compare-pytorch', 'alternate each step with one of bench/pytorch_train_step.py (needs python3-torch) and print the ratio')
    .option('--pytorch-malloc <mode>', 'PyTorch\'s allocator for --compare-pytorch: default (the stock environment) or tuned (glibc keeps freed memory instead of re-faulting it every step)', 'default')
    .option('--json', 'print one JSON object')
    .action(action(async (o: Record<string, unknown>) => {
      const backbone = String(o.backbone);
      if (!BACKBONE_ALIASES[backbone] && !backbone.startsWith('vit_')) throw new CtsError(`unknown backbone '${backbone}': expected vit-ti, vit-s, vit-b or vit-l`);
      if (o.decoder !== 'mask_transformer' && o.decoder !== 'linear') throw new CtsError(`--decoder must be mask_transformer or linear, got '${o.decoder}'`);
      const opts: TrainBenchOptions = {
        backbone, decoder: o.decoder, imageSize: o.cropSize as number, classes: o.classes as number, batch: o.batch as number,
        warmup: o.warmup as number, steps: o.steps as number, numShared: o.numShared as number, stochastic: o.stochastic !== false,
        ...(o.threads ? { threads: o.threads as number } : {}),
        ...(o.rssEvery ? { every: o.rssEvery as number, onRss: (s: number, mb: number) => process.stderr.write(`step ${s}: rss ${mb.toFixed(0)} MB\n`) } : {}),
      };
      const malloc = parsePytorchMalloc(String(o.pytorchMalloc)); // before minutes of timing
      const { ours, pytorch: torch } = o.comparePytorch ? await benchTrainVsPytorch(opts, undefined, malloc) : { ours: await benchTrainStep(opts), pytorch: undefined };
      const ratio = torch && typeof torch.ms_per_step_median === 'number' ? torch.ms_per_step_median / ours.ms_per_step_median : undefined;
      const result = { ...opts, onRss: undefined, cts_seg: ours, ...(torch ? { pytorch: torch } : {}), ...(ratio ? { speedup_vs_pytorch: ratio } : {}) };
      if (o.json) return void process.stdout.write(JSON.stringify(result) + '\n');
      process.stdout.write(`cts-seg: ${ours.ms_per_step_median.toFixed(0)} ms/step (min ${ours.ms_per_step_min.toFixed(0)}, max ${ours.ms_per_step_max.toFixed(0)}), peak RSS ${ours.peak_rss_mb.toFixed(0)} MB, compile ${ours.compile_seconds.toFixed(1)} s\n`);
      if (ours.rss_first_mb !== undefined) process.stdout.write(`resident memory: ${ours.rss_first_mb.toFixed(0)} MB -> ${ours.rss_last_mb!.toFixed(0)} MB (${((100 * (ours.rss_last_mb! - ours.rss_first_mb)) / ours.rss_first_mb).toFixed(1)}%)\n`);
      if (torch?.skipped) process.stdout.write(`pytorch: skipped (${torch.skipped})\n`);
      else if (torch) process.stdout.write(`pytorch: ${(torch.ms_per_step_median as number).toFixed(0)} ms/step, peak RSS ${(torch.peak_rss_mb as number).toFixed(0)} MB, ${torch.malloc === 'tuned' ? 'tuned' : 'stock'} malloc\nratio: PyTorch time / cts-seg time = ${ratio!.toFixed(2)}x\n`);
    }));
}
