// `cts-seg forward`: one Segmenter(+CTS) forward pass from official-named weights and an .npy
// batch, for checking against other implementations.
import { mkdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { readSafetensors } from '../io/safetensors.node.js';
import { loadStateDict } from '../io/safetensors.js';
import { readNpy, serializeNpy } from '../io/npy.js';
import { writeFileAtomic, describeFsError } from '../io/fs.node.js';
import { CtsError } from '../base/errors.js';
import { inferSegmenterConfig } from '../models/weights.js';
import { segmenterSpec } from '../models/segmenter.js';
import { segmenterForward } from '../cts/forward.js';
import type { Provider } from '../runtime/providers.js';
import { action, nonNegInt, posInt } from './util.js';
import { numSharedOption, outOption, precisionOption, providerOption } from './options.js';
import type { Precision } from '../nn/params.js';

interface ForwardOpts {
  weights: string;
  input: string;
  out: string;
  policyLogits?: string;
  numShared?: number;
  numNotShared?: number;
  encoderHeads?: number;
  decoderHeads?: number;
  provider: Provider;
  intermediates?: boolean;
  precision: Precision;
}

/** Registers the `forward` command. */
export function registerForward(program: Command): void {
  const cmd = program
    .command('forward')
    .description('run one forward pass of a Segmenter (+CTS) from weights in the official PyTorch naming; writes logits.npy (and mask_shared.npy)')
    .requiredOption('--weights <file>', 'model weights (.safetensors, official state-dict names); width, depth, classes, patch size and grid are read off the tensor shapes')
    .requiredOption('--input <file>', 'normalised input batch (.npy, float32 [B,3,H,W])')
    .option('--policy-logits <file>', 'policy logits (.npy, float32 [B,2,H/32,W/32]); the top --num-shared superpatches by softmax p(share) are shared');
  outOption(cmd, 'output directory (created if missing)', { required: true });
  numSharedOption(cmd, { note: 'needs --policy-logits; default 0' });
  cmd
    .option('--num-not-shared <N1>', 'optional check: patches that keep their own token; must equal H/16*W/16 - 4*S', nonNegInt('--num-not-shared'))
    .option('--encoder-heads <n>', 'encoder attention heads, where not d_model/64 (default: from the file metadata, else d_model/64)', posInt('--encoder-heads'))
    .option('--decoder-heads <n>', 'decoder attention heads, where not d_model/64 (default: from the file metadata, else d_model/64)', posInt('--decoder-heads'))
  providerOption(cmd, { note: 'falls back to cpu with a message' });
  precisionOption(cmd);
  cmd
    .option('--intermediates', 'also write tokens_embedded, encoder_out, decoder_masks_tokens, decoder_masks_grid (and mask_scale1, policy_code)')
    .action(action(runForward));
}

async function runForward(o: ForwardOpts): Promise<void> {
  const { tensors, metadata } = await readSafetensors(o.weights);
  const input = await readNpy(o.input);
  const config = inferSegmenterConfig(tensors, {
    metadata,
    source: o.weights,
    ...(o.encoderHeads ? { encoderHeads: o.encoderHeads } : {}),
    ...(o.decoderHeads ? { decoderHeads: o.decoderHeads } : {}),
  });
  // strict: every parameter present with the right shape; the ImageNet head and a policy net may ride along
  const weights = loadStateDict(segmenterSpec(config), tensors, { source: o.weights, allowUnexpected: ['encoder.head.', 'policy_net.'] });
  const S = o.numShared ?? 0;
  if (S > 0 && !o.policyLogits) throw new CtsError(`--num-shared ${S} needs --policy-logits P.npy (float32 [B,2,H/32,W/32])`);
  const policyLogits = o.policyLogits ? await readNpy(o.policyLogits) : undefined;
  if (policyLogits && policyLogits.dtype !== 'float32') throw new CtsError(`${o.policyLogits}: policy logits must be float32, got ${policyLogits.dtype}`);
  if (input.dtype !== 'float32') throw new CtsError(`${o.input}: input must be float32 [B,3,H,W], got ${input.dtype} [${input.shape.join(',')}]`);
  if (policyLogits && policyLogits.shape[0] !== input.shape[0]) {
    throw new CtsError(`${o.policyLogits}: batch ${policyLogits.shape[0]} differs from the input's ${input.shape[0]}`);
  }
  const res = await segmenterForward(weights, input, {
    config,
    numShared: S,
    ...(policyLogits && S > 0 ? { policyLogits } : {}),
    ...(o.numNotShared !== undefined ? { numNotShared: o.numNotShared } : {}),
    intermediates: !!o.intermediates,
    provider: o.provider,
    precision: o.precision,
  });
  const files: [string, Uint8Array][] = [['logits.npy', serializeNpy(res.logits)]];
  if (res.maskShared) files.push(['mask_shared.npy', serializeNpy(res.maskShared)]);
  for (const [k, t] of Object.entries(res.intermediates ?? {})) files.push([`${k}.npy`, serializeNpy(t)]);
  await writeAll(o.out, files);
  const [b, k, h, w] = res.logits.shape;
  process.stdout.write(`wrote ${files.map((f) => f[0]).join(', ')} to ${o.out} (batch ${b}, ${k} classes, ${h}x${w}, ${res.numTokens} tokens per image)\n`);
}

/** Writes every file or none: all go to temp names first, then are renamed into place. */
async function writeAll(dir: string, files: [string, Uint8Array][]): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    throw new CtsError(`cannot create output directory ${dir}: ${describeFsError(e)}`);
  }
  const tmp = files.map(([name]) => join(dir, `.${name}.partial-${process.pid}`));
  try {
    for (let i = 0; i < files.length; i++) await writeFileAtomic(tmp[i]!, files[i]![1]);
    for (let i = 0; i < files.length; i++) await rename(tmp[i]!, join(dir, files[i]![0]));
  } catch (e) {
    await Promise.all(tmp.map((t) => unlink(t).catch(() => undefined)));
    throw e instanceof CtsError ? e : new CtsError(`cannot write to ${dir}: ${describeFsError(e)}`);
  }
}
