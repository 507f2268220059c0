// Pretrained weights from the Python world mapped onto cts-seg's official names (spec §4.1, §4.3):
// timm/AugReg ViT .npz files (the backbones Segmenter starts from), and PyTorch state dicts of a
// Segmenter, a timm ViT or the CTS policy network. Every importer checks the result against the
// model's own parameter spec, so a wrong or partial file fails here, naming keys, not at run time.
import { basename } from 'node:path';
import { CtsError } from '../base/errors.js';
import { readNpz } from '../io/npz.js';
import { loadStateDict } from '../io/safetensors.js';
import { numel, type HostTensor } from '../base/tensor.js';
import { readTorchStateDict } from '../io/torch.js';
import type { ParamSpec } from '../nn/params.js';
import { parseSegmenterConfig } from './config.js';
import { policyNetSpec } from './policynet.js';
import { segmenterSpec } from './segmenter.js';
import { resizePosEmbed, vitSpec } from './vit.js';
import { inferSegmenterConfig } from './weights.js';

/** The source formats: AugReg .npz, or a .pth state dict of a Segmenter, a timm ViT or the policy net. */
export type ImportKind = 'vit-npz' | 'segmenter-pth' | 'vit-pth' | 'policy-pth';
/** All import kinds, for option parsing and messages. */
export const IMPORT_KINDS: readonly ImportKind[] = ['vit-npz', 'segmenter-pth', 'vit-pth', 'policy-pth'];

/** What an import did, for the user to check. */
export interface ImportReport {
  kind: ImportKind;
  /** [source name(s), cts-seg name] for every output tensor. */
  mapped: [string, string][];
  /** Source tensors not carried over (ImageNet head, pre-logits, optimizer leftovers...). */
  dropped: string[];
  /** Other changes: pos_embed resized, 'module.' prefix stripped, float64 narrowed, heads unknown. */
  notes: string[];
}

/** Mapped tensors, safetensors metadata worth keeping (n_heads, pos_grid), and the report. */
export interface ImportResult {
  tensors: Map<string, HostTensor>;
  metadata: Record<string, string>;
  report: ImportReport;
}

/** Options shared by the importers. */
export interface ImportOptions {
  /** Target patch grid [rows, cols] of `encoder.pos_embed` (resized bilinearly, CLS kept); default: as stored. */
  grid?: [number, number];
  /** File name for messages. */
  source?: string;
  /** Channel multiplier of the policy net (policy-pth); default 1 (the paper's EfficientNet-Lite0). */
  policyWidth?: number;
}

type F32 = HostTensor & { data: Float32Array };

/** float32 as is, float64 narrowed; anything else is not a weight. */
function asF32(t: HostTensor, key: string, src: string, notes?: Set<string>): F32 {
  if (t.dtype === 'float32') return t as F32;
  if (t.dtype === 'float64') {
    notes?.add('float64 tensors narrowed to float32');
    return { dtype: 'float32', shape: [...t.shape], data: Float32Array.from(t.data as Float64Array) };
  }
  throw new CtsError(`${src}: '${key}' is ${t.dtype}, expected float32 weights`);
}

/** General N-d transpose of a dense tensor (numpy `x.transpose(perm)` made contiguous). */
function permute(t: F32, perm: number[]): F32 {
  const rank = t.shape.length;
  const shape = perm.map((p) => t.shape[p]!);
  const inStride = new Array<number>(rank);
  for (let d = rank - 1, s = 1; d >= 0; s *= t.shape[d]!, d--) inStride[d] = s;
  const stride = perm.map((p) => inStride[p]!);
  const out = new Float32Array(t.data.length);
  const idx = new Array<number>(rank).fill(0);
  for (let o = 0, s = 0; o < out.length; o++) {
    out[o] = t.data[s]!;
    for (let d = rank - 1; d >= 0; d--) {
      s += stride[d]!;
      if (++idx[d]! < shape[d]!) break;
      s -= stride[d]! * shape[d]!;
      idx[d] = 0;
    }
  }
  return { dtype: 'float32', shape, data: out };
}

const reshape = (t: F32, shape: number[]): F32 => ({ dtype: 'float32', shape, data: t.data });

function concat0(ts: F32[]): F32 {
  const data = new Float32Array(ts.reduce((n, t) => n + t.data.length, 0));
  let at = 0;
  for (const t of ts) data.set(t.data, (at += t.data.length) - t.data.length);
  return { dtype: 'float32', shape: [ts.reduce((n, t) => n + t.shape[0]!, 0), ...ts[0]!.shape.slice(1)], data };
}

/** timm 0.4.12 `_load_weights._n2p`: squeeze [1,1,1,N] kernels, then HWIO->OIHW, [a,b,c]->[c,a,b], [a,b]->[b,a]. */
function n2p(t: F32, transpose = true): F32 {
  let x = t;
  if (x.shape.length === 4 && x.shape[0] === 1 && x.shape[1] === 1 && x.shape[2] === 1) x = reshape(x, [x.shape[3]!]);
  if (!transpose) return x;
  const perm = ({ 4: [3, 2, 0, 1], 3: [2, 0, 1], 2: [1, 0] } as Record<number, number[]>)[x.shape.length];
  return perm ? permute(x, perm) : x;
}

function squareGrid(pos: HostTensor, key: string, src: string): number {
  const n = (pos.shape[1] ?? 0) - 1, g = Math.round(Math.sqrt(n));
  if (pos.shape.length !== 3 || pos.shape[0] !== 1 || g * g !== n) {
    throw new CtsError(`${src}: '${key}' is [${pos.shape.join(',')}], expected [1, 1+g*g, D] (CLS + a square grid)`);
  }
  return g;
}

/** Resizes `encoder.pos_embed` in place to `grid` when asked; records it in notes and metadata. */
function applyGrid(out: Map<string, HostTensor>, grid: [number, number] | undefined, r: ImportResult, src: string): [number, number] {
  const pos = out.get('encoder.pos_embed');
  if (!pos) throw new CtsError(`${src}: no 'encoder.pos_embed' after mapping; the file is not a complete ViT`);
  const g = squareGrid(pos, 'encoder.pos_embed', src);
  if (!grid || (grid[0] === g && grid[1] === g)) return [g, g];
  out.set('encoder.pos_embed', resizePosEmbed(asF32(pos, 'encoder.pos_embed', src), [g, g], grid));
  r.report.notes.push(`encoder.pos_embed resized from ${g}x${g} to ${grid[0]}x${grid[1]} (bilinear, align_corners=False, CLS kept)`);
  r.metadata.pos_grid = JSON.stringify(grid);
  return grid;
}

/** Strict check of encoder tensors against the ViT spec of the shapes they imply. */
function checkEncoder(out: Map<string, HostTensor>, grid: [number, number], heads: number, src: string): void {
  const w = (k: string): number[] => {
    const t = out.get(k);
    if (!t) throw new CtsError(`${src}: no '${k}' after mapping; the file is not a complete ViT`);
    return t.shape;
  };
  let layers = 0;
  while (out.has(`encoder.blocks.${layers}.norm1.weight`)) layers++;
  const [d, , p] = w('encoder.patch_embed.proj.weight');
  const cfg = parseSegmenterConfig(
    { patch_size: p, d_model: d, n_layers: Math.max(layers, 1), n_heads: heads, d_ff: w('encoder.blocks.0.mlp.fc1.weight')[0], pos_grid: grid, n_cls: 1, decoder_n_heads: 1, decoder_d_ff: 1 },
    src,
  );
  const spec: ParamSpec = new Map();
  vitSpec(spec, cfg);
  loadStateDict(spec, out, { source: src });
}

function newResult(kind: ImportKind, src: string): ImportResult {
  return { tensors: new Map(), metadata: { import_kind: kind, import_source: basename(src) }, report: { kind, mapped: [], dropped: [], notes: [] } };
}

/**
 * timm/AugReg ViT .npz -> `encoder.*`, following timm 0.4.12 `_load_weights` exactly: conv kernel
 * HWIO->OIHW, qkv fused from query/key/value ([D,heads,dh] each, in that order), proj from out,
 * Dense kernels transposed, LayerNorm scale->weight. `head/*` and `pre_logits/*` are dropped.
 * The attention head count is read off the query kernel and kept in the metadata (`n_heads`).
 */
export function importVitNpz(npz: Map<string, HostTensor>, o: ImportOptions = {}): ImportResult {
  const src = o.source ?? 'npz';
  const r = newResult('vit-npz', src);
  const prefix = npz.has('opt/target/embedding/kernel') ? 'opt/target/' : '';
  const used = new Set<string>();
  const get = (k: string, rank: number): F32 => {
    const t = npz.get(prefix + k);
    if (!t) throw new CtsError(`${src}: missing '${prefix}${k}', expected a timm/AugReg ViT .npz (embedding/kernel, cls, Transformer/...)`);
    if (t.shape.length !== rank) throw new CtsError(`${src}: '${prefix}${k}' is [${t.shape.join(',')}], expected ${rank} dims`);
    used.add(prefix + k);
    return asF32(t, prefix + k, src);
  };
  const put = (to: string, t: F32, from: string): void => {
    r.tensors.set(to, t);
    r.report.mapped.push([prefix + from, to]);
  };
  put('encoder.cls_token', n2p(get('cls', 3), false), 'cls');
  put('encoder.pos_embed', n2p(get('Transformer/posembed_input/pos_embedding', 3), false), 'Transformer/posembed_input/pos_embedding');
  put('encoder.patch_embed.proj.weight', n2p(get('embedding/kernel', 4)), 'embedding/kernel');
  put('encoder.patch_embed.proj.bias', n2p(get('embedding/bias', 1)), 'embedding/bias');
  let heads = 0;
  let i = 0;
  for (; npz.has(`${prefix}Transformer/encoderblock_${i}/LayerNorm_0/scale`); i++) {
    const b = `Transformer/encoderblock_${i}/`, m = `${b}MultiHeadDotProductAttention_1/`, t = `encoder.blocks.${i}.`;
    put(`${t}norm1.weight`, n2p(get(`${b}LayerNorm_0/scale`, 1)), `${b}LayerNorm_0/scale`);
    put(`${t}norm1.bias`, n2p(get(`${b}LayerNorm_0/bias`, 1)), `${b}LayerNorm_0/bias`);
    const qkv = ['query', 'key', 'value'];
    const kernels = qkv.map((n) => n2p(get(`${m}${n}/kernel`, 3), false));
    heads = kernels[0]!.shape[1]!;
    // [D, heads, dh] -> flatten(1) -> [D, heads*dh] -> .T, stacked q, k, v along the output axis
    put(`${t}attn.qkv.weight`, concat0(kernels.map((k) => permute(reshape(k, [k.shape[0]!, k.shape[1]! * k.shape[2]!]), [1, 0]))), `${m}{query,key,value}/kernel`);
    put(`${t}attn.qkv.bias`, concat0(qkv.map((n) => { const x = get(`${m}${n}/bias`, 2); return reshape(x, [x.data.length]); })), `${m}{query,key,value}/bias`);
    const out = n2p(get(`${m}out/kernel`, 3));
    put(`${t}attn.proj.weight`, reshape(out, [out.shape[0]!, out.shape[1]! * out.shape[2]!]), `${m}out/kernel`);
    put(`${t}attn.proj.bias`, n2p(get(`${m}out/bias`, 1)), `${m}out/bias`);
    put(`${t}norm2.weight`, n2p(get(`${b}LayerNorm_2/scale`, 1)), `${b}LayerNorm_2/scale`);
    put(`${t}norm2.bias`, n2p(get(`${b}LayerNorm_2/bias`, 1)), `${b}LayerNorm_2/bias`);
    for (const k of [0, 1]) {
      put(`${t}mlp.fc${k + 1}.weight`, n2p(get(`${b}MlpBlock_3/Dense_${k}/kernel`, 2)), `${b}MlpBlock_3/Dense_${k}/kernel`);
      put(`${t}mlp.fc${k + 1}.bias`, n2p(get(`${b}MlpBlock_3/Dense_${k}/bias`, 1)), `${b}MlpBlock_3/Dense_${k}/bias`);
    }
  }
  if (i === 0) throw new CtsError(`${src}: no 'Transformer/encoderblock_0/...' arrays, expected a timm/AugReg ViT .npz`);
  put('encoder.norm.weight', n2p(get('Transformer/encoder_norm/scale', 1)), 'Transformer/encoder_norm/scale');
  put('encoder.norm.bias', n2p(get('Transformer/encoder_norm/bias', 1)), 'Transformer/encoder_norm/bias');
  r.report.dropped.push(...[...npz.keys()].filter((k) => !used.has(k)));
  const grid = applyGrid(r.tensors, o.grid, r, src);
  checkEncoder(r.tensors, grid, heads, src);
  r.metadata.n_heads = String(heads);
  return r;
}

/** Strips DataParallel's `module.` prefix when every key has it. */
function stripModule(sd: Map<string, HostTensor>, r: ImportResult): Map<string, HostTensor> {
  const keys = [...sd.keys()];
  if (!keys.length || !keys.every((k) => k.startsWith('module.'))) return sd;
  r.report.notes.push("'module.' prefix (DataParallel) stripped");
  return new Map([...sd].map(([k, v]) => [k.slice('module.'.length), v]));
}

/** Moves tensors into the result (floats as float32), recording the mapping. */
function take(r: ImportResult, from: string, to: string, t: HostTensor, src: string, notes: Set<string>): void {
  r.tensors.set(to, t.dtype === 'float64' ? asF32(t, from, src, notes) : t);
  r.report.mapped.push([from, to]);
}

function refuseUnknown(unknown: string[], src: string, what: string): void {
  if (unknown.length) {
    const more = unknown.length > 5 ? `, …and ${unknown.length - 5} more` : '';
    throw new CtsError(`${src}: ${unknown.length} key(s) are not ${what}: ${unknown.slice(0, 5).join(', ')}${more}`);
  }
}

const VIT_KEY = /^(cls_token|pos_embed|patch_embed\.proj\.(weight|bias)|norm\.(weight|bias)|blocks\.\d+\.(norm1|norm2|attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\.(weight|bias))$/;
const VIT_DROPPED = /^(head|head_dist|pre_logits)\./;

/** A timm ViT state dict -> `encoder.*` (same names under the prefix); the ImageNet `head.*` and `pre_logits.*` are dropped. */
export function importVitStateDict(sd: Map<string, HostTensor>, o: ImportOptions = {}): ImportResult {
  const src = o.source ?? 'state dict';
  const r = newResult('vit-pth', src);
  const notes = new Set<string>();
  const unknown: string[] = [];
  for (const [k, t] of stripModule(sd, r)) {
    if (VIT_DROPPED.test(k)) r.report.dropped.push(k);
    else if (VIT_KEY.test(k)) take(r, k, `encoder.${k}`, t, src, notes);
    else unknown.push(k);
  }
  refuseUnknown(unknown, src, 'timm ViT parameters (for a Segmenter checkpoint use kind segmenter-pth)');
  const grid = applyGrid(r.tensors, o.grid, r, src);
  checkEncoder(r.tensors, grid, 1, src);
  r.report.notes.push(...notes, 'a state dict does not store the attention head count: readers assume D/64 unless told (--encoder-heads)');
  return r;
}

/** A Segmenter(+CTS) state dict in the official names, used as is; `encoder.head.*` (unused ImageNet head) is dropped. */
export function importSegmenterStateDict(sd: Map<string, HostTensor>, o: ImportOptions = {}): ImportResult {
  const src = o.source ?? 'state dict';
  const r = newResult('segmenter-pth', src);
  const notes = new Set<string>();
  const unknown: string[] = [];
  for (const [k, t] of stripModule(sd, r)) {
    if (k.startsWith('encoder.head.')) r.report.dropped.push(k);
    else if (/^(encoder|decoder|policy_net)\./.test(k)) take(r, k, k, t, src, notes);
    else unknown.push(k);
  }
  refuseUnknown(unknown, src, 'Segmenter parameters (encoder.*, decoder.*, policy_net.*)');
  applyGrid(r.tensors, o.grid, r, src);
  const main = new Map([...r.tensors].filter(([k]) => !k.startsWith('policy_net.')));
  const cfg = inferSegmenterConfig(main, { source: src, ...(r.metadata.pos_grid ? { metadata: { pos_grid: r.metadata.pos_grid } } : {}) });
  loadStateDict(segmenterSpec(cfg), main, { source: src });
  const policy = new Map([...r.tensors].filter(([k]) => k.startsWith('policy_net.')).map(([k, v]) => [k.slice('policy_net.'.length), v]));
  if (policy.size) loadStateDict(policyNetSpec(o.policyWidth !== undefined ? { width: o.policyWidth } : {}), policy, { source: `${src} (policy_net.*)` });
  r.report.notes.push(...notes);
  return r;
}

/** The CTS policy net's own state dict (`backbone.*`, `head.*`) -> `policy_net.*`, checked against EfficientNet-Lite0. */
export function importPolicyStateDict(sd: Map<string, HostTensor>, o: ImportOptions = {}): ImportResult {
  const src = o.source ?? 'state dict';
  const r = newResult('policy-pth', src);
  const notes = new Set<string>();
  const plain = stripModule(sd, r);
  refuseUnknown([...plain.keys()].filter((k) => !/^(backbone|head)\./.test(k)), src, 'policy-net parameters (backbone.*, head.*)');
  for (const [k, t] of plain) take(r, k, `policy_net.${k}`, t, src, notes);
  const spec = policyNetSpec(o.policyWidth !== undefined ? { width: o.policyWidth } : {});
  loadStateDict(spec, new Map([...r.tensors].map(([k, v]) => [k.slice('policy_net.'.length), v])), { source: src });
  if (o.grid) r.report.notes.push('--grid ignored: the policy net has no positional embedding');
  r.report.notes.push(...notes);
  return r;
}

/** Guesses the kind of a state dict from its key names; undefined when nothing matches. */
export function detectStateDictKind(keys: Iterable<string>): ImportKind | undefined {
  const ks = [...keys].map((k) => k.replace(/^module\./, ''));
  if (ks.some((k) => /^(encoder|decoder)\./.test(k))) return 'segmenter-pth';
  if (ks.some((k) => k.startsWith('backbone.'))) return 'policy-pth';
  if (ks.some((k) => /^(blocks\.|patch_embed\.|cls_token$|pos_embed$)/.test(k))) return 'vit-pth';
  return undefined;
}

/** Options of {@link importWeights}. */
export interface ImportWeightsOptions extends Omit<ImportOptions, 'source'> {
  /** Source format; default: vit-npz for `.npz`, else read off the state dict's key names. */
  kind?: ImportKind;
  /** Called as tensors are read, with (done, total). */
  onProgress?: (done: number, total: number) => void;
}

/** Reads a .npz or .pth file and maps it to cts-seg names (see the importers above). */
export async function importWeights(path: string, o: ImportWeightsOptions = {}): Promise<ImportResult> {
  const io = { ...(o.onProgress ? { onProgress: o.onProgress } : {}) };
  const opts: ImportOptions = { source: path, ...(o.grid ? { grid: o.grid } : {}), ...(o.policyWidth !== undefined ? { policyWidth: o.policyWidth } : {}) };
  const kind = o.kind ?? (/\.npz$/i.test(path) ? 'vit-npz' : undefined);
  if (kind === 'vit-npz') return importVitNpz(await readNpz(path, io), opts);
  const sd = await readTorchStateDict(path, io);
  const k = kind ?? detectStateDictKind(sd.keys());
  if (!k) {
    const first = [...sd.keys()].slice(0, 5).join(', ');
    throw new CtsError(`${path}: cannot tell what model this state dict is for (keys ${first}, …); pass --kind ${IMPORT_KINDS.join('|')}`);
  }
  const run = { 'segmenter-pth': importSegmenterStateDict, 'vit-pth': importVitStateDict, 'policy-pth': importPolicyStateDict }[k as Exclude<ImportKind, 'vit-npz'>];
  return run(sd, opts);
}

/** Element count of all mapped tensors (for the CLI summary). */
export function importedParamCount(r: ImportResult): number {
  let n = 0;
  for (const t of r.tensors.values()) n += numel(t.shape);
  return n;
}
