// The command line's one vocabulary (cli/options.ts): old spellings parse exactly as the canonical
// flags, every command with a concept accepts its canonical name, --help lists every option with a
// description, and unknown policies and providers are one-line errors naming the valid values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { registerBench } from '../../src/cli/bench.js';
import { registerBenchTrain } from '../../src/cli/bench_train.js';
import { registerEval } from '../../src/cli/eval.js';
import { registerExport } from '../../src/cli/export.js';
import { registerForward } from '../../src/cli/forward.js';
import { registerInfer } from '../../src/cli/infer.js';
import { registerInfo } from '../../src/cli/info.js';
import { registerInit } from '../../src/cli/init.js';
import { registerTrain } from '../../src/cli/train.js';
import { registerImport } from '../../src/cli/import.js';
import { registerPrepare } from '../../src/cli/prepare.js';
import { registerDemo } from '../../src/cli/demo.js';
import { CtsError } from '../../src/base/errors.js';
import { runCli } from '../helpers/cli.js';

/** A fresh program with every command, as main.ts builds it. */
function program(): Command {
  const p = new Command();
  for (const r of [registerForward, registerImport, registerEval, registerInfer, registerInit, registerPrepare, registerBench, registerInfo, registerTrain, registerDemo, registerBenchTrain, registerExport]) r(p);
  return p;
}

/** Options of `name` after parsing `args` (no action runs: parseOptions stores values only). */
function parsed(name: string, args: string[]): Record<string, unknown> {
  const cmd = program().commands.find((c) => c.name() === name)!;
  // commander's own errors throw (instead of exiting the test process) and stay off stderr
  cmd.exitOverride().configureOutput({ writeErr: () => {} });
  const { unknown } = cmd.parseOptions(args);
  assert.deepEqual(unknown, [], `${name} ${args.join(' ')}: unknown options`);
  return cmd.opts();
}

/** [command, old spelling, canonical, value]. */
const ALIASES: [string, string, string, string][] = [
  ['train', '--num-tokens-shared', '--num-shared', '103'],
  ['train', '--policy-method', '--policy', 'random'],
  ['train', '--out-dir', '--out', 'runs/x'],
  ['train', '--log-dir', '--out', 'runs/x'],
  ['train', '--image-size', '--crop-size', '512'],
  ['train-policy', '--width', '--policy-width', '0.5'],
  ['train-policy', '--out-dir', '--out', 'runs/p'],
  ['bench', '--image-size', '--crop-size', '512x1024'],
  ['bench-train', '--image-size', '--crop-size', '64'],
  ['info', '--image-size', '--crop-size', '768'],
  ['init', '--image-size', '--crop-size', '64'],
  ['export', '--size', '--crop-size', '64x96'],
];

test('old spellings are hidden aliases that parse exactly as the canonical flag', () => {
  for (const [cmd, alias, canonical, v] of ALIASES) {
    const a = parsed(cmd, [alias, v]), c = parsed(cmd, [canonical, v]);
    assert.deepEqual(a, c, `${cmd}: ${alias} ${v} and ${canonical} ${v}`);
    assert.ok(Object.values(c).length > 0, `${cmd} ${canonical} stored a value`);
  }
  // parsed, not kept as strings: the same numbers and sizes whichever spelling
  assert.equal(parsed('train', ['--num-tokens-shared', '103']).numShared, 103);
  assert.deepEqual(parsed('export', ['--size', '64x96']).cropSize, [64, 96]);
  assert.deepEqual(parsed('bench', ['--image-size', '512']).cropSize, [512, 512]);
  assert.equal(parsed('train-policy', ['--width', '0.5']).policyWidth, 0.5);
  // and an alias fails as the canonical flag does
  for (const [cmd, args] of [['train', ['--num-tokens-shared', 'x']], ['train', ['--policy-method', 'best']], ['export', ['--size', 'big']]] as const) {
    assert.throws(() => parsed(cmd, [...args]), (e: unknown) => e instanceof CtsError || (e as { code?: string }).code === 'commander.invalidArgument', `${cmd} ${args.join(' ')}`);
  }
});

/** Every command that has a concept, by canonical flag and a valid value. */
const CONCEPTS: [string, string, string[]][] = [
  ['--num-shared', '3', ['eval', 'infer', 'init', 'bench', 'bench-train', 'info', 'export', 'forward', 'train']],
  ['--crop-size', '64', ['bench', 'bench-train', 'info', 'init', 'export', 'train', 'train-policy']],
  ['--policy', 'no_sharing', ['eval', 'infer', 'init', 'export', 'train']],
  ['--provider', 'cpu', ['eval', 'infer', 'bench', 'forward', 'train']],
  ['--out', 'somewhere', ['eval', 'infer', 'init', 'export', 'forward', 'train', 'train-policy']],
  ['--threads', '2', ['bench', 'bench-train', 'train', 'train-policy']],
  ['--policy-width', '0.5', ['bench', 'info', 'init', 'train', 'train-policy']],
  ['--window-stride', '32', ['eval', 'infer']],
  ['--checkpoint', 'm.safetensors', ['eval', 'infer', 'export', 'bench', 'info']],
  ['--precision', 'int8', ['export', 'infer', 'eval', 'bench', 'forward']],
];

test('the canonical name of a concept is accepted by every command that has it, with one description', () => {
  for (const [flag, v, commands] of CONCEPTS) {
    const descriptions = new Set<string>();
    for (const name of commands) {
      const cmd = program().commands.find((c) => c.name() === name)!;
      const opt = cmd.options.find((o) => o.long === flag && !o.hidden);
      assert.ok(opt, `${name} has ${flag}`);
      // the shared text comes first; a command's note follows '; ' (and export lists its own policies after ': ')
      descriptions.add(opt.description.split(/; |: /)[0]!);
      const o = parsed(name, [flag, v]);
      assert.notEqual(o[opt.attributeName()], undefined, `${name} ${flag} ${v}`);
    }
    // what --out names is the command's own (a checkpoint, an ONNX file, a run folder): outOption takes it
    if (flag !== '--out') assert.equal(descriptions.size, 1, `${flag}: one shared description, got ${[...descriptions].join(' | ')}`);
  }
});

test('--help of every command lists every option with a description; old spellings are not listed', () => {
  const old = ['--image-size', '--size', '--out-dir', '--log-dir', '--num-tokens-shared', '--policy-method', '--width'];
  for (const cmd of program().commands) {
    const help = cmd.helpInformation();
    for (const o of cmd.options) {
      if (o.hidden) {
        assert.ok(old.includes(o.long!), `${cmd.name()}: ${o.long} is hidden but not an old spelling`);
        continue;
      }
      assert.ok(o.description.trim().length > 0, `${cmd.name()} ${o.flags} has a description`);
      assert.ok(help.includes(o.flags), `${cmd.name()} --help lists ${o.flags}`);
    }
    for (const f of old) assert.ok(!new RegExp(`^\\s+${f} `, 'm').test(help), `${cmd.name()} --help does not list ${f}`);
  }
});

test('an unknown policy or provider is a one-line error naming the value and the valid ones', async () => {
  const cases: [string[], RegExp][] = [
    [['eval', '--checkpoint', 'm.safetensors', '--dataset', 'folder', '--data-root', '.', '--policy', 'best'], /^cts-seg: error: unknown policy 'best': expected no_sharing, policy_net, oracle, random$/],
    [['infer', 'a.png', '--checkpoint', 'm.safetensors', '--out', 'o', '--policy', 'best'], /^cts-seg: error: unknown policy 'best': expected no_sharing, policy_net, oracle, random$/],
    [['init', '--backbone', 'vit-ti', '--classes', '3', '--out', 'x.safetensors', '--policy', 'best'], /^cts-seg: error: unknown policy 'best': expected no_sharing, policy_net, oracle, random$/],
    [['train', '--policy-method', 'best'], /^cts-seg: error: unknown policy 'best': expected no_sharing, policy_net, oracle, random$/],
    [['export', '--checkpoint', 'm.safetensors', '--out', 'x.onnx', '--policy', 'oracle'], /^cts-seg: error: unknown policy 'oracle': expected policy_net, no_sharing, policy_logits$/],
    [['eval', '--checkpoint', 'm.safetensors', '--dataset', 'folder', '--data-root', '.', '--provider', 'tpu'], /^cts-seg: error: unknown execution provider 'tpu' for Node: expected cpu, webgpu, cuda$/],
    [['bench', '--provider', 'wasm'], /^cts-seg: error: unknown execution provider 'wasm' for Node: expected cpu, webgpu, cuda$/],
    [['forward', '--weights', 'w', '--input', 'i', '--out', 'o', '--provider', 'tpu'], /^cts-seg: error: unknown execution provider 'tpu' for Node: expected cpu, webgpu, cuda$/],
    [['train', '--provider', 'tpu'], /^cts-seg: error: unknown execution provider 'tpu' for Node: expected cpu, webgpu, cuda$/],
  ];
  await Promise.all(cases.map(async ([args, re]) => {
    const r = await runCli(args);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, re);
  }));
});
