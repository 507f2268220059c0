#!/usr/bin/env node
// The cts-seg command line.
import { Command } from 'commander';
import { createRequire } from 'node:module';
import { registerForward } from './forward.js';

const pkg = createRequire(import.meta.url)('../../../package.json') as { version: string };

const program = new Command();
program
  .name('cts-seg')
  .description('Semantic segmentation with Vision Transformers and Content-aware Token Sharing (CTS), on ONNX Runtime')
  .version(pkg.version)
  .showHelpAfterError('(run with --help for usage)');
registerForward(program);
await program.parseAsync(process.argv);
