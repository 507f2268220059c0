#!/usr/bin/env node
// The cts-seg command line.
import '../node/register.js'; // onnxruntime-node and the Node platform, before any command compiles a graph
import { Command } from 'commander';
import { createRequire } from 'node:module';
import { registerForward } from './forward.js';
import { registerImport } from './import.js';
import { registerEval } from './eval.js';
import { registerInfer } from './infer.js';
import { registerInit } from './init.js';
import { registerPrepare } from './prepare.js';
import { registerBench } from './bench.js';
import { registerInfo } from './info.js';
import { registerTrain } from './train.js';
import { registerDemo } from './demo.js';
import { registerBenchTrain } from './bench_train.js';
import { registerExport } from './export.js';
import { registerModels, registerPull } from './pull.js';
import { registerExportWeights } from './official.js';
import { reportError } from './util.js';

const pkg = createRequire(import.meta.url)('../../../package.json') as { version: string };

const program = new Command();
program
  .name('cts-seg')
  .description('Semantic segmentation with Vision Transformers and Content-aware Token Sharing (CTS), on ONNX Runtime')
  .version(pkg.version)
  .showHelpAfterError('(run with --help for usage)');
registerForward(program);
registerImport(program);
registerEval(program);
registerInfer(program);
registerInit(program);
registerPrepare(program);
registerBench(program);
registerInfo(program);
registerTrain(program);
registerDemo(program);
registerBenchTrain(program);
registerExport(program);
registerExportWeights(program);
registerPull(program);
registerModels(program);
try {
  await program.parseAsync(process.argv);
} catch (e) {
  // option parsers (cli/options.ts) throw CtsError while commander parses, before any action runs
  if (!reportError(e)) throw e;
}
