// `cts-seg bench`: throughput with the paper's protocol (spec §9), GMACs from the graph, a budget
// sweep, and a same-run comparison with PyTorch.
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { CtsError } from '../base/errors.js';
import { runBench, type BenchOptions, type BenchProgress } from '../bench/bench.js';
import { budgetForReduction, sweepBudgets, SWEEP_REDUCTIONS } from '../bench/setup.js';
import { findTorchPython, parsePytorchMalloc, PytorchServer, type PytorchArgs } from '../bench/pytorch.js';
import { physicalCores } from '../bench/machine.js';
import { createSegmenterConfig } from '../models/config.js';
import { loadCheckpoint } from '../cts/checkpoint.node.js';
import { formatPrecisionComparison, formatResult, formatSweep, precisionRatio, type ComparedResult } from '../bench/report.js';
import type { Precision } from '../nn/params.js';
import type { Provider } from '../runtime/session.js';
import { tokenBudget } from '../cts/budget.js';
import { resolveSharing } from '../cts/spec.js';
import { action, nonNegInt, posInt } from './util.js';
import { modelFile } from './model_file.js';
import { checkpointOption, modelOption, cropSizeOption, numSharedOption, policyWidthOption, precisionOption, providerOption, reductionOption, threadsOption } from './options.js';

interface BenchOpts {
  backbone?: string;
  decoder?: string;
  cropSize?: [number, number];
  classes?: number;
  numShared?: number;
  reduction?: number;
  batch: number;
  warmup: number;
  iters: number;
  provider: Provider;
  threads?: number;
  policyWidth?: number;
  checkpoint?: string;
  model?: string;
  image?: string;
  json?: boolean;
  sweep?: boolean;
  sequential?: boolean;
  microBatch?: number;
  fetchLogits?: boolean;
  comparePytorch?: boolean;
  python?: string;
  pytorchMalloc?: string;
  precision: Precision;
  comparePrecision?: boolean;
}

/** Registers the `bench` command. */
export function registerBench(program: Command): void {
  const cmd = program
    .command('bench')
    .description('throughput benchmark (paper protocol: one image repeated to the batch at the crop size, forward only, policy net included and timed alone, warm-up, timed iterations); prints images/s, ms per batch, tokens and GMACs per image')
    .option('--backbone <name>', 'vit-ti, vit-s, vit-b or vit-l (default vit-s; not with --checkpoint)')
    .option('--decoder <name>', 'mask_transformer or linear (default mask_transformer; not with --checkpoint)');
  cropSizeOption(cmd, { note: 'a multiple of 32 with sharing; default 512, or the checkpoint\'s crop', aliases: ['--image-size'] });
  cmd.option('--classes <K>', 'number of classes (default 150; not with --checkpoint)', posInt('--classes'));
  numSharedOption(cmd, { note: 'default 0; with --checkpoint, its own budget (at another crop, the same token reduction); the policy network runs inside the timed forward' });
  reductionOption(cmd, { note: 'instead of --num-shared; the paper\'s S where it has one: 103 at 512, 336 for 44% at 768' });
  cmd
    .option('--batch <B>', 'images per forward (the paper: 32)', posInt('--batch'), 32)
    .option('--micro-batch <n>', 'images per micro-batch inside the graph: the batch runs as a sequence of smaller pieces whose activations stay in cache (default 2 where one image\'s attention maps reach 16 MB, e.g. ViT-S at 512x512, else the whole batch; --micro-batch equal to --batch runs it in one piece)', posInt('--micro-batch'))
    .option('--warmup <N>', 'untimed warm-up iterations', nonNegInt('--warmup'), 50)
    .option('--iters <N>', 'timed iterations', posInt('--iters'), 100);
  providerOption(cmd, { note: 'no fallback: an unavailable provider is an error' });
  threadsOption(cmd, { note: 'default: the physical core count; PyTorch gets the same' });
  policyWidthOption(cmd, { note: 'default 1, or the checkpoint\'s' });
  precisionOption(cmd, { note: 'the policy network computes in fp32' });
  cmd.option('--compare-precision', 'time fp32 and int8 in the same run (iterations interleaved) and print both and their ratio; instead of --precision');
  checkpointOption(cmd, { note: 'time this model instead of random weights' });
  modelOption(cmd, { note: 'time this zoo model instead of random weights' });
  cmd
    .option('--image <file>', 'image to repeat over the batch, resized to the crop (default: a synthetic image)')
    .option('--sweep', `time the ${SWEEP_REDUCTIONS.map((r) => `${r * 100}%`).join('/')} token budgets in one run (iterations interleaved round-robin) and print a table`)
    .option('--fetch-logits', 'copy the full logits [B,K,H,W] into a JS buffer every iteration, as a Predictor user gets them (default: they are computed in full and stay in ORT memory, one logit per image is fetched, like PyTorch\'s model(x) output)')
    .option('--sequential', 'with --sweep: one budget after the other instead of interleaved (one session in memory at a time)')
    .option('--compare-pytorch', 'also time the same model in PyTorch (bench/pytorch_segmenter.py, same protocol and threads) and print the ratio and peak RSS of each; with --precision int8, PyTorch\'s quantize_dynamic int8 model (onednn engine); with --compare-precision, PyTorch\'s fp32 and int8 models (one process), each timed after cts-seg\'s iteration of the same precision')
    .option('--python <path>', 'Python interpreter for --compare-pytorch (default: $CTS_PYTHON, python3 or /usr/bin/python3, whichever imports torch)')
    .option('--pytorch-malloc <mode>', 'PyTorch\'s allocator for --compare-pytorch: default (the stock environment) or tuned (glibc keeps freed memory: stock PyTorch spends much of its time re-faulting its attention maps)', 'default')
    .option('--json', 'print one JSON object (images_per_second, ms_per_batch, gmacs, machine...; a sweep gives {"sweep": [...]})')
    .action(action(runBenchCommand));
}

/** The PyTorch models' settings: the same model, crop, budgets, batch and threads as cts-seg's run. */
async function pytorchArgs(bo: BenchOptions, budgets: number[], threads: number): Promise<PytorchArgs> {
  if (bo.checkpoint) {
    const ck = await loadCheckpoint(bo.checkpoint);
    return {
      backbone: ck.config.backbone, decoder: ck.config.decoder, classes: ck.config.n_cls, imageSize: bo.imageSize ?? ck.cropSize,
      budgets, policyWidth: bo.policyWidth ?? ck.cts.policyWidth ?? 1, batch: bo.batch ?? 32, threads,
    };
  }
  const cfg = createSegmenterConfig(bo.backbone ?? 'vit-s', { n_cls: bo.classes ?? 150 });
  return {
    backbone: cfg.backbone, decoder: bo.decoder ?? 'mask_transformer', classes: cfg.n_cls, imageSize: bo.imageSize ?? [512, 512],
    budgets, policyWidth: bo.policyWidth ?? 1, batch: bo.batch ?? 32, threads,
  };
}

/**
 * A checkpoint is timed at its own budget unless told otherwise, by resolveSharing's rules (at another
 * crop, the stored token reduction). Its policy does not matter: the protocol times the policy network
 * (random weights where the checkpoint has none), which is what an oracle or random policy stands for.
 */
async function checkpointBudget(file: string | undefined, size: [number, number] | undefined): Promise<number> {
  if (!file) return 0;
  const ck = await loadCheckpoint(file);
  return resolveSharing(ck.cts, {}, { size: size ?? ck.cropSize, patchSize: ck.config.patch_size, storedSize: ck.cropSize }).numShared;
}

/** Progress on stderr: a bar on a TTY, else a line per phase and every 10 iterations. */
function progress(): { on: (e: BenchProgress) => void; stop: () => void; log: (l: string) => void } {
  const tty = process.stderr.isTTY === true && !process.env.CI;
  let bar: cliProgress.SingleBar | undefined;
  let key = '';
  const stop = () => {
    bar?.stop();
    bar = undefined;
  };
  return {
    on(e) {
      const k = `${e.phase} ${e.label}`;
      if (tty) {
        if (k !== key) {
          stop();
          key = k;
          bar = new cliProgress.SingleBar({ stream: process.stderr, format: `${e.phase.padEnd(7)} [{bar}] {value}/{total} ${e.label}`, hideCursor: true }, cliProgress.Presets.shades_classic);
          bar.start(e.total, e.done);
        } else bar?.update(e.done);
        if (e.done === e.total && e.phase !== 'compile') stop();
      } else if (k !== key || e.done === e.total || e.done % 10 === 0) {
        key = k;
        if (e.phase !== 'compile' || e.done === 0) process.stderr.write(`bench: ${e.phase} ${e.label} ${e.phase === 'compile' ? '' : `${e.done}/${e.total}`}\n`);
      }
    },
    stop,
    log(l) {
      stop();
      process.stderr.write(`${l}\n`);
    },
  };
}

async function runBenchCommand(o: BenchOpts): Promise<void> {
  const file = await modelFile(o, true);
  if (file !== undefined) o.checkpoint = file;
  delete o.model;
  const provider = o.provider;
  if (o.decoder !== undefined && o.decoder !== 'mask_transformer' && o.decoder !== 'linear') {
    throw new CtsError(`--decoder must be mask_transformer or linear, got '${o.decoder}'`);
  }
  if (o.numShared !== undefined && o.reduction !== undefined) throw new CtsError('give --num-shared or --reduction, not both');
  if (o.sweep && (o.numShared !== undefined || o.reduction !== undefined)) throw new CtsError('--sweep times its own budgets; leave out --num-shared and --reduction');
  const size = o.cropSize;
  const patch = 16;
  // with a checkpoint the crop (and so the budgets) are known only after loading; presets use 512
  const [h, w] = size ?? [512, 512];
  let budgets: number[];
  if (o.sweep) budgets = sweepBudgets(h, w, patch);
  else if (o.reduction !== undefined) budgets = [budgetForReduction(h, w, patch, o.reduction)];
  else if (o.numShared !== undefined) budgets = [o.numShared];
  else budgets = [await checkpointBudget(o.checkpoint, size)];
  if (o.checkpoint && !size && (o.sweep || o.reduction !== undefined)) {
    throw new CtsError('with --checkpoint, --sweep and --reduction need --crop-size (the budgets depend on the crop)');
  }
  // impossible budgets fail here, before any model is built (a checkpoint's crop is checked on load)
  if (!o.checkpoint) for (const S of budgets) tokenBudget(h, w, patch, S);
  const pg = progress();
  const bo: BenchOptions = {
    ...(o.backbone !== undefined ? { backbone: o.backbone } : {}),
    ...(o.decoder !== undefined ? { decoder: o.decoder as 'mask_transformer' | 'linear' } : {}),
    ...(size ? { imageSize: size } : {}),
    ...(o.classes !== undefined ? { classes: o.classes } : {}),
    numShared: budgets,
    batch: o.batch,
    warmup: o.warmup,
    iters: o.iters,
    provider,
    ...(o.threads !== undefined ? { threads: o.threads } : {}),
    ...(o.policyWidth !== undefined ? { policyWidth: o.policyWidth } : {}),
    ...(o.checkpoint !== undefined ? { checkpoint: o.checkpoint } : {}),
    ...(o.image !== undefined ? { image: o.image } : {}),
    ...(o.sequential ? { sequential: true } : {}),
    ...(o.microBatch ? { microBatch: o.microBatch } : {}),
    ...(o.fetchLogits ? { fetchLogits: true } : {}),
    precision: o.comparePrecision ? ['fp32', 'int8'] : o.precision,
    onProgress: pg.on,
  };
  // find PyTorch first: a missing torch is reported before minutes of timing, not after
  const malloc = parsePytorchMalloc(o.pytorchMalloc ?? 'default');
  const torch = o.comparePytorch ? findTorchPython(o.python) : undefined;
  if (o.python && torch?.reason) throw new CtsError(`--python ${o.python} cannot import torch`);
  if (torch?.reason) pg.log(`bench: PyTorch comparison skipped: ${torch.reason}`);
  let server: PytorchServer | undefined;
  let results: ComparedResult[];
  try {
    if (torch?.python) {
      const threads = bo.threads ?? physicalCores();
      bo.threads = threads;
      pg.log('bench: starting the PyTorch model(s) (bench/pytorch_segmenter.py --serve)');
      // int8 against int8: PyTorch's own dynamic quantization of its Linear layers (onednn: the faster
      // of Debian's two engines here); with --compare-precision, both of PyTorch's models in one process
      const precisions: Precision[] = o.comparePrecision ? ['fp32', 'int8'] : [o.precision ?? 'fp32'];
      server = await PytorchServer.start(torch.python, { ...(await pytorchArgs(bo, budgets, threads)), malloc, precisions, ...(precisions.includes('int8') ? { quantize: 'onednn' as const } : {}) });
      if (/\/blas\/libblas\.so/.test(server.info.blas)) pg.log(`bench: warning: PyTorch runs on the reference BLAS (${server.info.blas}), ~15x slower than OpenBLAS; install libopenblas0-openmp for a fair comparison`);
      bo.companion = server;
    }
    results = await runBench(bo);
    const info = server ? await server.close() : undefined;
    for (const r of results) {
      if (torch?.reason) r.pytorch = { skipped: torch.reason };
      const companion = r.companion;
      if (!info || !companion) continue;
      delete r.companion;
      r.pytorch = { ...info, ...companion };
      r.speedup_vs_pytorch = Math.round((r.images_per_second / companion.images_per_second) * 100) / 100;
    }
  } finally {
    server?.kill();
    pg.stop();
  }
  if (o.comparePrecision) return printComparison(results, o);
  if (o.json) process.stdout.write(`${JSON.stringify(o.sweep ? { sweep: results } : results[0])}\n`);
  else process.stdout.write(`${o.sweep ? formatSweep(results) : formatResult(results[0]!)}\n`);
}

/** --compare-precision: results come budget by budget, fp32 then int8 (runBench's point order). */
function printComparison(results: ComparedResult[], o: BenchOpts): void {
  const fp32 = results.filter((r) => r.precision === 'fp32'), int8 = results.filter((r) => r.precision === 'int8');
  if (o.json) {
    const ratios = fp32.map((f, i) => ({ num_shared: f.num_shared, int8_vs_fp32: precisionRatio(f, int8[i]!) }));
    process.stdout.write(`${JSON.stringify(o.sweep ? { sweep: results, ratios } : { results, ratio: ratios[0] })}\n`);
  } else if (o.sweep) {
    const ratios = fp32.map((f, i) => `S=${f.num_shared}: ${precisionRatio(f, int8[i]!).mean}x`).join(', ');
    process.stdout.write(`fp32\n${formatSweep(fp32)}\n\nint8\n${formatSweep(int8)}\n\nint8 / fp32 images/s, same run: ${ratios}\n`);
  } else process.stdout.write(`${formatPrecisionComparison(fp32[0]!, int8[0]!)}\n`);
}
