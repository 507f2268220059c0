// The command line's one vocabulary: every option that more than one command has is declared here,
// once, with one flag name, one description and one parser, so that `--num-shared` means the same
// thing (and fails the same way) in eval, infer, init, bench, info, export, forward and train.
// Older spellings stay accepted as hidden aliases that store into the same attribute, so scripts
// written against them (and the official segm/train.py flags) keep working. Parsers of command-line
// strings (sizes, reductions) live here too, not in the layers below the CLI.
import { Option, type Command } from 'commander';
import { CtsError } from '../base/errors.js';
import { parsePolicy, POLICY_METHODS } from '../cts/spec.js';
import { parseProvider, PLATFORM_PROVIDERS } from '../runtime/providers.js';
import { PRECISIONS, type Precision } from '../nn/params.js';
import { nonNegInt, posInt } from './util.js';

/** Per-command additions to a shared option. */
export interface OptionUse<T = unknown> {
  /** Appended to the shared description: this command's default or restriction. */
  note?: string;
  default?: T | undefined;
  required?: boolean;
  /** Hidden alternative spellings (e.g. `--image-size`), parsed exactly as the option. */
  aliases?: readonly string[];
}

/**
 * An alternative spelling of an option: hidden from --help, and stored under the canonical option's
 * attribute (commander has no aliases; it keys values by `attributeName()`), so both spellings
 * parse identically and the action sees one value.
 */
class AliasOption extends Option {
  constructor(flags: string, private readonly target: string) {
    super(flags);
    this.hideHelp();
  }

  override attributeName(): string {
    return this.target;
  }
}

/** Adds `flags` (+ aliases) to `cmd` with the shared description and parser; returns `cmd`. */
function addShared<T>(cmd: Command, flags: string, description: string, parse: ((v: string) => T) | undefined, use: OptionUse<T> = {}): Command {
  const opt = new Option(flags, use.note ? `${description}; ${use.note}` : description);
  if (parse) opt.argParser((v: string) => parse(v));
  if (use.default !== undefined) opt.default(use.default);
  if (use.required) opt.makeOptionMandatory();
  cmd.addOption(opt);
  const arg = flags.slice(flags.indexOf(' '));
  for (const alias of use.aliases ?? []) {
    const a = new AliasOption(`${alias}${arg}`, opt.attributeName());
    if (parse) a.argParser((v: string) => parse(v));
    cmd.addOption(a);
  }
  return cmd;
}

/** Parses "512" or "512x768" (height x width) into [h, w]. */
export function parseImageSize(s: string): [number, number] {
  const m = /^(\d+)(?:x(\d+))?$/.exec(s.trim());
  if (!m) throw new CtsError(`image size '${s}' must be N or HxW, e.g. 512 or 512x1024`);
  const h = Number(m[1]), w = Number(m[2] ?? m[1]);
  if (h <= 0 || w <= 0) throw new CtsError(`image size '${s}' must be positive`);
  return [h, w];
}

/** Parses a square crop "512" (or "512x512") into its side. */
export function parseSquareSize(s: string): number {
  const [h, w] = parseImageSize(s);
  if (h !== w) throw new CtsError(`crop size '${s}' must be square here (N or NxN)`);
  return h;
}

/** Parses a reduction given as a fraction (0.3) or a percentage ("30%", or 30). */
export function parseReduction(r: string): number {
  let v = Number(r.trim().replace(/%$/, ''));
  if (!Number.isFinite(v) || v < 0) throw new CtsError(`reduction '${r}' must be a non-negative number such as 0.3 or 30%`);
  if (v > 1 || r.trim().endsWith('%')) v /= 100;
  if (v > 0.75) throw new CtsError(`reduction '${r}' is impossible: sharing every superpatch removes at most 75% of the tokens`);
  return v;
}

/** Parses a policy-network width multiplier, a number in (0, 4]. */
export function parsePolicyWidth(v: string): number {
  const w = Number(v);
  if (v.trim() === '' || !(w > 0 && w <= 4)) throw new CtsError(`--policy-width must be a number in (0, 4], got '${v}'`);
  return w;
}

/** What each policy name means, for the --policy description. */
const POLICY_HELP: Record<string, string> = {
  no_sharing: 'the plain Segmenter',
  policy_net: 'the policy network',
  oracle: 'ground-truth uniform superpatches',
  random: 'seeded random superpatches',
  policy_logits: 'policy logits from a second input policy_logits [B,2,H/32,W/32]',
};

/** Parses one of `choices` (CtsError naming the value and the valid ones, as parsePolicy). */
function parseChoice<T extends string>(what: string, choices: readonly T[]) {
  return (v: string): T => {
    if (!(choices as readonly string[]).includes(v)) throw new CtsError(`unknown ${what} '${v}': expected ${choices.join(', ')}`);
    return v as T;
  };
}

/** `--num-shared <S>`: shared superpatches per image or window. */
export function numSharedOption(cmd: Command, use?: OptionUse<number>): Command {
  return addShared(cmd, '--num-shared <S>', 'shared superpatches S per image, each one token for 2x2 patches (0 = no sharing)', nonNegInt('--num-shared'), use);
}

/**
 * `--policy <name>`: the token-sharing policy, one of the CTS policies (POLICY_METHODS) unless the
 * command has its own set (export: policy_logits).
 */
export function policyOption<T extends string = (typeof POLICY_METHODS)[number]>(cmd: Command, use: OptionUse<T> & { choices?: readonly T[] } = {}): Command {
  const choices = use.choices ?? (POLICY_METHODS as readonly string[] as readonly T[]);
  const parse = use.choices ? parseChoice('policy', use.choices) : (v: string) => parsePolicy(v) as T;
  return addShared(cmd, '--policy <name>', `token-sharing policy: ${choices.map((c) => `${c} (${POLICY_HELP[c] ?? c})`).join(', ')}`, parse, use);
}

/** `--provider <name>`: the ONNX Runtime execution provider (Node's: cpu, webgpu, cuda). */
export function providerOption(cmd: Command, use: OptionUse<string> = {}): Command {
  return addShared(cmd, '--provider <name>', `execution provider: ${PLATFORM_PROVIDERS.node.join(', ')}`, (v) => parseProvider(v, 'node'), { default: 'cpu', ...use });
}

/** `--crop-size <N|HxW>`: the crop (the sliding window at evaluation); `square` for commands that train on square crops. */
export function cropSizeOption(cmd: Command, use: OptionUse<number | [number, number]> & { square?: boolean } = {}): Command {
  const description = 'crop size in pixels';
  return use.square
    ? addShared(cmd, '--crop-size <N>', description, parseSquareSize, { ...use, note: use.note ? `square; ${use.note}` : 'square' })
    : addShared(cmd, '--crop-size <N|HxW>', description, parseImageSize, use);
}

/** `--out <path>`: where a command writes; `what` says what the path is (a file, a folder and what goes in it). */
export function outOption(cmd: Command, what: string, use?: OptionUse<string>): Command {
  return addShared(cmd, '--out <path>', what, undefined, use);
}

/** `--threads <N>`: ONNX Runtime intra-op threads. */
export function threadsOption(cmd: Command, use?: OptionUse<number>): Command {
  return addShared(cmd, '--threads <N>', 'ONNX Runtime intra-op threads', posInt('--threads'), use);
}

/** `--window-stride <px>`: the sliding window's stride. */
export function windowStrideOption(cmd: Command, use?: OptionUse<number>): Command {
  return addShared(cmd, '--window-stride <px>', 'sliding-window stride in pixels', posInt('--window-stride'), use);
}

/** `--checkpoint <file>`: a model checkpoint (.safetensors). */
export function checkpointOption(cmd: Command, use?: OptionUse<string>): Command {
  return addShared(cmd, '--checkpoint <file>', 'model checkpoint (.safetensors from train, init or demo, or an official-named state dict)', undefined, use);
}

/** `--policy-width <w>`: channel multiplier of the EfficientNet-Lite0 policy network. */
export function policyWidthOption(cmd: Command, use?: OptionUse<number>): Command {
  return addShared(cmd, '--policy-width <w>', 'channel multiplier of the EfficientNet-Lite0 policy network (1 = the paper\'s; e.g. 0.5 for a lighter one)', parsePolicyWidth, use);
}

/** `--reduction <r>`: a token budget as the fraction of tokens removed. */
export function reductionOption(cmd: Command, use?: OptionUse<number>): Command {
  return addShared(cmd, '--reduction <r>', 'token reduction 3S/patches, as a fraction (0.3) or a percentage (30%)', parseReduction, use);
}

/** `--seed <n>`: a seed. */
export function seedOption(cmd: Command, use?: OptionUse<number>): Command {
  return addShared(cmd, '--seed <n>', 'seed', nonNegInt('--seed'), use);
}

/** `--model <name>`: a model of the zoo, instead of `--checkpoint FILE` (see modelFile). */
export function modelOption(cmd: Command, use?: OptionUse<string>): Command {
  return addShared(cmd, '--model <name>', 'a model of the zoo (`cts-seg models`), downloaded into the cache on first use; instead of --checkpoint', undefined, use);
}

/** `--precision <p>`: arithmetic of the Linear layers, fp32 or int8 (per-channel int8 weights, activations quantized at run time). */
export function precisionOption(cmd: Command, use: OptionUse<Precision> = {}): Command {
  return addShared(cmd, '--precision <p>', `arithmetic of the model: ${PRECISIONS.join(' or ')} (int8: the Linear layers, patch embedding and attention scores as int8 products, per-output-channel int8 weights, activations quantized at run time; attn·v, softmax, norms and the policy network stay float32)`, parseChoice('precision', PRECISIONS), { default: 'fp32', ...use });
}

/** Parses a memory size in GB (10^9 bytes) into bytes. */
export function parseGigabytes(v: string): number {
  const g = Number(v);
  if (v.trim() === '' || !(g > 0 && Number.isFinite(g))) throw new CtsError(`--max-memory expects a positive number of GB, got '${v}'`);
  return Math.round(g * 1e9);
}

/** `--max-memory <GB>`: the largest estimated graph memory accepted (default: the machine's memory). */
export function maxMemoryOption(cmd: Command, use?: OptionUse<number>): Command {
  return addShared(cmd, '--max-memory <GB>', 'largest estimated model-graph memory, in GB, before compiling it (default: the machine\'s memory)', parseGigabytes, use);
}

/** `--no-check-weights`: load a checkpoint without checking its weights are finite and its normalisation usable. */
export function checkWeightsOption(cmd: Command): Command {
  return cmd.option('--no-check-weights', 'load the checkpoint without checking that its weights are finite and its normalisation std positive');
}
