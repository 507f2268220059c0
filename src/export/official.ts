// Official run directories (rstrudel/segmenter and tue-mps/cts-segmenter `segm/train.py`) mapped to
// and from cts-seg checkpoints. Both repos build the model with `create_segmenter(net_kwargs)`, where
// the encoder MLP is 4·d_model and the mask transformer has d_model // 64 heads and a 4·d_model MLP;
// the CTS fork adds `policy_method`, `policy_schedule = (N1, S)` and `policynet_ckpt` to net_kwargs
// and keeps the policy network in the state dict as `policy_net.*`. Lives in export (not cts) because
// the dataset's classes and palette come from the data catalog.
import { CtsError } from '../base/errors.js';
import type { HostTensor } from '../base/tensor.js';
import { parseSegmenterConfig, type SegmenterConfig } from '../models/config.js';
import { CHECKPOINT_FORMAT, defaultPalette, parseCheckpoint, VIT_NORMALIZATION, type ModelCheckpoint } from '../cts/checkpoint.js';
import { DATASETS, type DatasetName } from '../data/catalog.js';
import { variantInt, variantMap, variantPair, type Variant, type VariantValue } from '../io/variant.js';

/** Official dataset names (segm/data/factory.py) -> cts-seg's catalog names. */
const DATASET_NAMES: Record<string, DatasetName> = { ade20k: 'ade20k', pascal_context: 'pcontext', cityscapes: 'cityscapes', camvid: 'camvid' };
/** Key paths of variant.yml that hold Python tuples. */
export const VARIANT_TUPLES = ['net_kwargs.image_size', 'net_kwargs.policy_schedule'];

const DEIT_NORMALIZATION = {
  mean: [0.485 * 255, 0.456 * 255, 0.406 * 255] as [number, number, number],
  std: [0.229 * 255, 0.224 * 255, 0.225 * 255] as [number, number, number],
};
/** segm/data/utils.py STATS, in 0..255 units. */
const NORMALIZATIONS: Record<string, ModelCheckpoint['normalization']> = { vit: VIT_NORMALIZATION, deit: DEIT_NORMALIZATION };

/** The configuration `create_segmenter(net_kwargs)` builds, checked key by key. */
function configFromNetKwargs(net: { [k: string]: VariantValue }, source: string): { config: SegmenterConfig; crop: [number, number] } {
  const w = 'net_kwargs';
  if (typeof net.backbone !== 'string') throw new CtsError(`${source}: ${w}.backbone must be a string, got ${JSON.stringify(net.backbone ?? null)}`);
  if (net.distilled === true) throw new CtsError(`${source}: ${w}.distilled is true: DeiT distillation tokens are not supported`);
  const d = variantInt(net, 'd_model', w, source);
  const patch = variantInt(net, 'patch_size', w, source);
  const crop = variantPair(net, 'image_size', w, source);
  if (!crop) throw new CtsError(`${source}: ${w}.image_size is missing (the training crop, a tuple of 2 integers)`);
  if (crop[0] % patch || crop[1] % patch || !crop[0] || !crop[1]) throw new CtsError(`${source}: ${w}.image_size (${crop.join(', ')}) is not a multiple of patch_size ${patch}`);
  const dec = variantMap(net, 'decoder', w, source);
  const name = dec.name;
  if (typeof name !== 'string' || !(name === 'mask_transformer' || name.includes('linear'))) {
    throw new CtsError(`${source}: ${w}.decoder.name must be mask_transformer or linear, got ${JSON.stringify(name ?? null)}`);
  }
  const mask = name === 'mask_transformer';
  if (mask && d < 64) throw new CtsError(`${source}: ${w}.d_model ${d} gives the mask transformer d_model // 64 = 0 heads`);
  const raw = {
    backbone: net.backbone,
    patch_size: patch,
    d_model: d,
    n_layers: variantInt(net, 'n_layers', w, source),
    n_heads: variantInt(net, 'n_heads', w, source),
    d_ff: 4 * d,
    pos_grid: [crop[0] / patch, crop[1] / patch],
    n_cls: variantInt(net, 'n_cls', w, source),
    decoder: mask ? 'mask_transformer' : 'linear',
    ...(mask ? { decoder_n_layers: variantInt(dec, 'n_layers', `${w}.decoder`, source) } : {}),
    decoder_n_heads: Math.max(1, Math.floor(d / 64)),
    decoder_d_ff: 4 * d,
  };
  return { config: parseSegmenterConfig(raw, `${source} net_kwargs`), crop };
}

/**
 * A cts-seg checkpoint from an official run's variant and state dict: the model configuration from
 * net_kwargs, the crop from image_size, the normalisation, the dataset's classes and palette (a
 * catalog dataset with the same class count; else generic names), the sliding window from
 * inference_kwargs, and for a cts-segmenter run its policy and budget S. `note` hears what was assumed.
 */
export function checkpointFromVariant(variant: Variant, tensors: Map<string, HostTensor>, source: string, note: (m: string) => void = () => undefined): ModelCheckpoint {
  const net = variantMap(variant, 'net_kwargs', '', source);
  const { config, crop } = configFromNetKwargs(net, source);
  const normName = typeof net.normalization === 'string' ? net.normalization : 'vit';
  const normalization = NORMALIZATIONS[normName];
  if (!normalization) throw new CtsError(`${source}: net_kwargs.normalization must be vit or deit, got ${JSON.stringify(net.normalization)}`);
  let cts: ModelCheckpoint['cts'] = { policy: 'no_sharing', numShared: 0 };
  if (net.policy_method !== undefined) {
    if (net.policy_method === 'policy_net') {
      const sched = variantPair(net, 'policy_schedule', 'net_kwargs', source);
      if (!sched) throw new CtsError(`${source}: net_kwargs.policy_schedule is missing: policy_net needs (num_tokens_notshared, num_tokens_shared)`);
      const [n1, s] = sched;
      const nb = config.pos_grid[0] * config.pos_grid[1];
      if (n1 + 4 * s !== nb) throw new CtsError(`${source}: net_kwargs.policy_schedule (${n1}, ${s}) does not add up: N1 + 4·S must be the ${nb} patches of a ${crop.join('x')} crop`);
      if (![...tensors.keys()].some((k) => k.startsWith('policy_net.'))) throw new CtsError(`${source}: policy_method is policy_net but the checkpoint has no policy_net.* weights`);
      cts = { policy: 'policy_net', numShared: s };
    } else if (net.policy_method !== 'no_sharing') {
      throw new CtsError(`${source}: net_kwargs.policy_method must be policy_net or no_sharing, got ${JSON.stringify(net.policy_method)}`);
    }
  }
  const dsName = variant.dataset_kwargs && typeof variant.dataset_kwargs === 'object' && !Array.isArray(variant.dataset_kwargs) ? variant.dataset_kwargs.dataset : undefined;
  const ds = typeof dsName === 'string' ? DATASETS[DATASET_NAMES[dsName] ?? ('' as DatasetName)] : undefined;
  const known = ds && ds.classes.length === config.n_cls ? ds : undefined;
  if (!known) note(`dataset ${JSON.stringify(dsName ?? null)} is not one cts-seg knows with ${config.n_cls} classes: class names are generic, colours the default palette`);
  const inf = variant.inference_kwargs;
  let window: ModelCheckpoint['window'];
  if (inf && typeof inf === 'object' && !Array.isArray(inf) && inf.window_size !== undefined) {
    window = { size: variantInt(inf, 'window_size', 'inference_kwargs', source), stride: variantInt(inf, 'window_stride', 'inference_kwargs', source) };
  }
  const meta: Record<string, string> = {
    format: CHECKPOINT_FORMAT,
    config: JSON.stringify(config),
    classes: JSON.stringify(known ? known.classes : Array.from({ length: config.n_cls }, (_, i) => `class_${i}`)),
    palette: JSON.stringify(known ? known.palette : defaultPalette(config.n_cls)),
    normalization: JSON.stringify(normalization),
    crop_size: JSON.stringify(crop),
    cts: JSON.stringify(cts),
    ...(known ? { dataset: known.name } : {}),
    ...(window ? { window: JSON.stringify(window) } : {}),
    official_variant: JSON.stringify(variant),
  };
  return parseCheckpoint({ tensors, metadata: meta }, source);
}

// Registration order of the official modules, which is the order of their state_dict().
const ORDER = [
  'encoder', 'decoder', 'policy_net', 'cls_token', 'pos_embed', 'cls_emb', 'proj_patch', 'proj_classes', 'patch_embed',
  'blocks', 'norm1', 'norm2', 'attn', 'qkv', 'proj', 'mlp', 'fc1', 'fc2', 'norm', 'head', 'proj_dec', 'decoder_norm', 'mask_norm', 'weight', 'bias',
];
const RANK = new Map(ORDER.map((k, i) => [k, i]));

function compareOfficial(a: string, b: string): number {
  const x = a.split('.'), y = b.split('.');
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] === y[i]) continue;
    if (/^\d+$/.test(x[i]!) && /^\d+$/.test(y[i]!)) return Number(x[i]) - Number(y[i]);
    return (RANK.get(x[i]!) ?? ORDER.length) - (RANK.get(y[i]!) ?? ORDER.length);
  }
  return x.length - y.length;
}

/** Whether the export is a cts-segmenter run (the policy network and its budget, S = 0 included) rather than a plain Segmenter. */
function withPolicyNet(ckpt: ModelCheckpoint): boolean {
  return ckpt.cts.policy === 'policy_net' && [...ckpt.weights.keys()].some((k) => k.startsWith('policy_net.'));
}

/**
 * The state dict `load_model` expects, in the official module order: the checkpoint's weights plus
 * the ViT's ImageNet head `encoder.head.*` ([1000, D], unused by Segmenter but required by the strict
 * load; cts-seg does not keep it, so it is written as zeros). The policy net keeps its own order.
 */
export function officialStateDict(ckpt: ModelCheckpoint): Map<string, HostTensor> {
  const d = ckpt.config.d_model;
  const main = new Map([...ckpt.weights].filter(([k]) => !k.startsWith('policy_net.')));
  main.set('encoder.head.weight', { dtype: 'float32', shape: [1000, d], data: new Float32Array(1000 * d) });
  main.set('encoder.head.bias', { dtype: 'float32', shape: [1000], data: new Float32Array(1000) });
  const keys = [...main.keys()].sort(compareOfficial);
  const out = new Map(keys.map((k) => [k, main.get(k)!]));
  if (withPolicyNet(ckpt)) for (const [k, v] of ckpt.weights) if (k.startsWith('policy_net.')) out.set(k, v);
  return out;
}

const sameTriple = (a: readonly number[], b: readonly number[]) => a.every((x, i) => Math.abs(x - b[i]!) < 1e-3);

/**
 * The variant.yml of a checkpoint: the imported variant when there is one, with net_kwargs (and the
 * crop, dataset, normalisation and window entries) rewritten from the checkpoint so they agree with
 * the weights. A policy_net checkpoint gets the cts-segmenter keys. Throws when the official factory
 * could not rebuild this configuration.
 */
export function variantFromCheckpoint(ckpt: ModelCheckpoint, source: string, note: (m: string) => void = () => undefined): Variant {
  const c = ckpt.config;
  const bad = (what: string) => {
    throw new CtsError(`${source}: the official create_segmenter cannot build this model: ${what}`);
  };
  if (c.d_ff !== 4 * c.d_model) bad(`encoder MLP ${c.d_ff} is not 4·d_model`);
  if (c.decoder === 'mask_transformer' && (c.decoder_n_heads !== Math.floor(c.d_model / 64) || c.decoder_d_ff !== 4 * c.d_model)) {
    bad(`the decoder has ${c.decoder_n_heads} heads and MLP ${c.decoder_d_ff}; the factory derives d_model // 64 = ${Math.floor(c.d_model / 64)} and 4·d_model`);
  }
  if (Math.abs(c.layernorm_eps - 1e-5) > 1e-12) bad(`LayerNorm eps ${c.layernorm_eps} (nn.LayerNorm uses 1e-5)`);
  if (withPolicyNet(ckpt) && (ckpt.cts.policyWidth ?? 1) !== 1) bad(`policy network width ${ckpt.cts.policyWidth} (PolicyNet is EfficientNet-Lite0, width 1)`);
  const norm = Object.entries(NORMALIZATIONS).find(([, n]) => sameTriple(n.mean, ckpt.normalization.mean) && sameTriple(n.std, ckpt.normalization.std))?.[0];
  if (!norm) bad('its normalisation is neither vit nor deit (segm/data/utils.py STATS)');
  const crop: [number, number] = [c.pos_grid[0] * c.patch_size, c.pos_grid[1] * c.patch_size];
  if (crop[0] !== ckpt.cropSize[0] || crop[1] !== ckpt.cropSize[1]) note(`image_size is ${crop.join('x')}, the positional-embedding grid times the patch (the checkpoint's crop is ${ckpt.cropSize.join('x')})`);
  const base = structuredClone((ckpt.officialVariant ?? {}) as Variant);
  const prev = (k: string): { [k: string]: VariantValue } => {
    const v = base[k];
    return v && typeof v === 'object' && !Array.isArray(v) ? v : {};
  };
  const net = prev('net_kwargs');
  const dec = net.decoder && typeof net.decoder === 'object' && !Array.isArray(net.decoder) ? net.decoder : {};
  const netKwargs: { [k: string]: VariantValue } = {
    ...net,
    backbone: c.backbone,
    d_model: c.d_model,
    n_heads: c.n_heads,
    n_layers: c.n_layers,
    patch_size: c.patch_size,
    image_size: crop,
    n_cls: c.n_cls,
    normalization: norm!,
    distilled: false,
    dropout: net.dropout ?? 0.0,
    drop_path_rate: net.drop_path_rate ?? 0.1,
    decoder: c.decoder === 'mask_transformer'
      ? { drop_path_rate: 0.0, dropout: 0.1, ...dec, name: 'mask_transformer', n_layers: c.decoder_n_layers, n_cls: c.n_cls }
      : { name: 'linear', n_cls: c.n_cls },
  };
  for (const k of ['policy_method', 'policy_schedule', 'policynet_ckpt']) delete netKwargs[k];
  const nb = c.pos_grid[0] * c.pos_grid[1];
  if (withPolicyNet(ckpt)) {
    netKwargs.policy_method = 'policy_net';
    netKwargs.policy_schedule = [nb - 4 * ckpt.cts.numShared, ckpt.cts.numShared];
    // Segmenter.__init__ raises on None; any path that fails to load is ignored and the weights come from the state dict.
    netKwargs.policynet_ckpt = typeof net.policynet_ckpt === 'string' ? net.policynet_ckpt : 'policy_net.* in checkpoint.pth';
  } else if (net.policy_method !== undefined) {
    netKwargs.policy_method = 'no_sharing';
    netKwargs.policy_schedule = [null, null];
    netKwargs.policynet_ckpt = null;
  }
  if (ckpt.cts.policy !== 'no_sharing' && ckpt.cts.policy !== 'policy_net' && ckpt.cts.numShared > 0) {
    note(`the ${ckpt.cts.policy} policy has no counterpart in the official code: exported as a plain Segmenter`);
  }
  const dsName = Object.entries(DATASET_NAMES).find(([, v]) => v === ckpt.dataset)?.[0];
  const entry = ckpt.dataset && ckpt.dataset in DATASETS ? DATASETS[ckpt.dataset as DatasetName] : undefined;
  const window = ckpt.window ?? { size: crop[0], stride: entry && entry.name !== 'folder' ? entry.eval.windowStride : crop[0] };
  const ds = prev('dataset_kwargs');
  const inf = prev('inference_kwargs');
  return {
    ...base,
    dataset_kwargs: { ...ds, ...(dsName ? { dataset: dsName } : {}), crop_size: crop[0], normalization: norm! },
    inference_kwargs: { im_size: inf.im_size ?? entry?.eval.resizeShort ?? crop[0], ...inf, window_size: window.size, window_stride: window.stride },
    net_kwargs: netKwargs,
  };
}
