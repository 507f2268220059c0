// Official run directories on disk (Node): import `checkpoint.pth` + `variant.yml` as a cts-seg
// checkpoint, and write a checkpoint back as such a directory (or as an official-named safetensors).
// The mapping itself is official.ts.
import { existsSync } from 'node:fs';
import { readFile, rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CtsError } from '../base/errors.js';
import type { HostTensor } from '../base/tensor.js';
import { parseCheckpoint, type ModelCheckpoint } from '../cts/checkpoint.js';
import { describeFsError, makeOutputDir, removeCreatedDir, writeFileAtomic } from '../io/fs.node.js';
import { pyTypeName } from '../io/pickle.js';
import { openTorchFile, TorchTensor } from '../io/torch.js';
import { serializeTorchSave, type TorchDict } from '../io/torch_save.js';
import { dumpVariant, parseVariant } from '../io/variant.js';
import { importSegmenterStateDict } from '../models/import.node.js';
import { checkpointFromVariant, officialStateDict, VARIANT_TUPLES, variantFromCheckpoint } from './official.js';

/** Options of {@link importOfficialRun}. */
export interface OfficialImportOptions {
  /** Hears what was assumed or inferred (no variant.yml, unknown dataset...). */
  onNote?: (message: string) => void;
}

/** Reads the dict segm/train.py saves: the `model` state dict and `n_cls`; optimizer and scheduler are plain values, left unread. */
async function readRunCheckpoint(path: string): Promise<{ tensors: Map<string, HostTensor>; nCls?: number }> {
  const f = await openTorchFile(path);
  try {
    const root = f.root;
    const sd = root instanceof Map && root.get('model') instanceof Map ? (root.get('model') as Map<unknown, unknown>) : root;
    if (!(sd instanceof Map)) throw new CtsError(`${path} holds a ${pyTypeName(root)}, expected the dict segm/train.py saves ({'model': state dict, ...}) or a state dict`);
    const tensors = new Map<string, HostTensor>();
    for (const [k, t] of sd) {
      if (typeof k !== 'string' || !(t instanceof TorchTensor)) throw new CtsError(`${path}: state dict entry ${String(k)} is a ${pyTypeName(t)}, expected a tensor`);
      tensors.set(k, await f.tensor(t));
    }
    const n = root instanceof Map ? root.get('n_cls') : undefined;
    return { tensors, ...(typeof n === 'number' ? { nCls: n } : {}) };
  } finally {
    f.close();
  }
}

/**
 * Imports an official Segmenter or CTS-Segmenter run: `checkpointPath` is the `checkpoint.pth`
 * segm/train.py writes, and `variant.yml` beside it supplies the configuration (see
 * checkpointFromVariant). Without variant.yml the state dict alone is imported, its configuration
 * inferred from the tensor shapes, and `onNote` says so.
 */
export async function importOfficialRun(checkpointPath: string, o: OfficialImportOptions = {}): Promise<ModelCheckpoint> {
  const note = o.onNote ?? (() => undefined);
  const variantPath = join(dirname(checkpointPath), 'variant.yml');
  const { tensors, nCls } = await readRunCheckpoint(checkpointPath);
  if (!existsSync(variantPath)) {
    const r = importSegmenterStateDict(tensors, { source: checkpointPath });
    const ckpt = parseCheckpoint({ tensors: r.tensors, metadata: r.metadata }, checkpointPath);
    const c = ckpt.config;
    note(`no variant.yml beside ${checkpointPath}: configuration inferred from the tensor shapes (d_model ${c.d_model}, ${c.n_layers} layers, ` +
      `${c.n_heads} heads assumed as d_model/64, ${c.decoder} decoder, ${c.n_cls} classes, crop ${ckpt.cropSize.join('x')}); ` +
      `generic class names, ViT normalisation${ckpt.cts.policy === 'policy_net' ? ', policy net present but no budget (num_shared 0)' : ''}`);
    return ckpt;
  }
  let text: string;
  try {
    text = await readFile(variantPath, 'utf8');
  } catch (err) {
    throw new CtsError(`cannot read ${variantPath}: ${describeFsError(err)}`, { cause: err });
  }
  const ckpt = checkpointFromVariant(parseVariant(text, variantPath), tensors, variantPath, note);
  if (nCls !== undefined && nCls !== ckpt.config.n_cls) throw new CtsError(`${checkpointPath}: n_cls is ${nCls} but ${variantPath} says net_kwargs.n_cls ${ckpt.config.n_cls}`);
  return ckpt;
}

/** What {@link exportOfficialRun} wrote. */
export interface OfficialExport {
  checkpoint: string;
  variant: string;
  tensors: number;
}

/**
 * Writes `dir/checkpoint.pth` ({'model': OrderedDict state dict, 'n_cls', 'epoch': 0}; cts-seg has
 * no optimizer state to give, and load_model reads only 'model') and `dir/variant.yml`, which the
 * official `segm.model.factory.load_model(dir/checkpoint.pth)` rebuilds the model from. Both files
 * are serialized before anything is written, then renamed into place; on failure nothing new is
 * left, and a directory this call created is removed.
 */
export async function exportOfficialRun(ckpt: ModelCheckpoint, dir: string, o: OfficialImportOptions = {}): Promise<OfficialExport> {
  const variant = dumpVariant(variantFromCheckpoint(ckpt, dir, o.onNote), VARIANT_TUPLES);
  const sd = officialStateDict(ckpt);
  const root: TorchDict = {
    ordered: false,
    entries: new Map<string, TorchDict | number>([['model', { ordered: true, entries: sd }], ['n_cls', ckpt.config.n_cls], ['epoch', 0]]),
  };
  const pth = serializeTorchSave(root, 'checkpoint');
  const created = await makeOutputDir(dir, 'folder');
  const targets = { checkpoint: join(dir, 'checkpoint.pth'), variant: join(dir, 'variant.yml') };
  const staged = [`${targets.checkpoint}.partial`, `${targets.variant}.partial`];
  try {
    await writeFileAtomic(staged[0]!, pth);
    await writeFileAtomic(staged[1]!, variant);
    await rename(staged[0]!, targets.checkpoint);
    await rename(staged[1]!, targets.variant);
  } catch (err) {
    for (const p of staged) await unlink(p).catch(() => undefined);
    await removeCreatedDir(created);
    throw err instanceof CtsError ? err : new CtsError(`cannot write ${dir}: ${describeFsError(err)}`, { cause: err });
  }
  return { ...targets, tensors: sd.size };
}

