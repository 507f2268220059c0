// Which model file a command runs: `--checkpoint FILE` as given, or `--model NAME` from the zoo,
// pulled into the cache on first use (progress on stderr, CTS_SEG_OFFLINE honoured). One function
// for every command that takes both options.
import { CtsError } from '../base/errors.js';
import { existsSync } from 'node:fs';
import { pull, resolveModel } from '../zoo/pull.node.js';
import { findModel } from '../zoo/registry.js';
import { progressFactory } from './prepare.js';

/** The model file of `--checkpoint` or `--model` (exactly one of them, unless `optional`). */
export async function modelFile(o: { checkpoint?: string | undefined; model?: string | undefined }, optional = false): Promise<string | undefined> {
  if (o.checkpoint !== undefined && o.model !== undefined) throw new CtsError('give --checkpoint FILE or --model NAME, not both');
  if (o.model !== undefined) return resolveModel(o.model, { progress: progressFactory(), log: (m: string) => process.stderr.write(`${m}\n`) });
  if (o.checkpoint === undefined && !optional) throw new CtsError('give the model: --checkpoint FILE or --model NAME (see cts-seg models)');
  return o.checkpoint;
}

/**
 * `--pretrained NAME|FILE` of train: a zoo name (an AugReg backbone's .npz, or a segmentation
 * model's checkpoint) is pulled into the cache; anything else is a file, as before.
 */
export async function pretrainedFile(nameOrPath: string): Promise<string> {
  if (existsSync(nameOrPath) || !findModel(nameOrPath)) return nameOrPath;
  return (await pull(nameOrPath, { progress: progressFactory(), log: (m: string) => process.stderr.write(`${m}\n`) })).path;
}
