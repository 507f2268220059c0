// Helpers of the export tests: run an exported file in a fresh onnxruntime-node session (not our
// CompiledGraph wrapper, so the file must carry everything), read its metadata back, and small
// test models.
import ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import type { HostTensor } from '../../src/base/tensor.js';
import { createSegmenterConfig } from '../../src/models/config.js';
import { segmenterSpec } from '../../src/models/segmenter.js';
import { initSegmenterWeights } from '../../src/models/init.js';
import { initPolicyNet } from '../../src/models/policynet.js';
import { defaultPalette, VIT_NORMALIZATION, type ModelCheckpoint } from '../../src/cts/checkpoint.js';

/** Runs ONNX bytes (or a file path) once in a new InferenceSession; outputs as HostTensors. */
export async function runFresh(model: Uint8Array | string, feeds: Record<string, HostTensor>): Promise<Record<string, HostTensor>> {
  const sess = typeof model === 'string' ? await ort.InferenceSession.create(model) : await ort.InferenceSession.create(model);
  try {
    const ortFeeds = Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, new ort.Tensor(t.dtype, t.data, [...t.shape])]));
    const res = await sess.run(ortFeeds);
    return Object.fromEntries(Object.entries(res).map(([k, v]) => [k, { dtype: v.type as HostTensor['dtype'], shape: [...v.dims], data: v.data as HostTensor['data'] }]));
  } finally {
    await sess.release();
  }
}

/** metadata_props and graph input/output names of ONNX bytes, decoded with onnx-proto. */
export function describeOnnx(bytes: Uint8Array): { metadata: Record<string, string>; inputs: string[]; outputs: string[]; domains: string[] } {
  const m = onnxProto.onnx.ModelProto.decode(bytes);
  const g = m.graph!;
  return {
    metadata: Object.fromEntries((m.metadataProps ?? []).map((p) => [p.key ?? '', p.value ?? ''])),
    inputs: (g.input ?? []).map((v) => v.name ?? ''),
    outputs: (g.output ?? []).map((v) => v.name ?? ''),
    domains: [...new Set((g.node ?? []).map((n) => n.domain || 'ai.onnx'))].sort(),
  };
}

/** First-maximum argmax over the class axis of logits [B,K,H,W]. */
export function argmaxClasses(logits: HostTensor): number[] {
  const [b, k, h, w] = logits.shape as [number, number, number, number];
  const l = logits.data as Float32Array;
  const out: number[] = [];
  for (let i = 0; i < b; i++) {
    for (let px = 0; px < h * w; px++) {
      let best = 0;
      for (let c = 1; c < k; c++) if (l[(i * k + c) * h * w + px]! > l[(i * k + best) * h * w + px]!) best = c;
      out.push(best);
    }
  }
  return out;
}

/** A small random checkpoint (linear or mask-transformer decoder) with a width-0.25 policy net. */
export function smallCheckpoint(decoder: 'linear' | 'mask_transformer', numShared: number, seed = 1): ModelCheckpoint {
  const config = createSegmenterConfig('custom', { d_model: 32, n_layers: 2, n_heads: 2, n_cls: 5, decoder, decoder_n_layers: 1, image_size: 64 });
  const weights = initSegmenterWeights(segmenterSpec(config), seed);
  for (const [k, v] of initPolicyNet(seed + 1, { width: 0.25 })) weights.set(`policy_net.${k}`, v);
  return {
    config, weights, classes: ['sky', 'building', 'road', 'car', 'tree'], palette: defaultPalette(5),
    normalization: { mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375] }, cropSize: [64, 64],
    cts: { policy: 'policy_net', numShared, policyWidth: 0.25 }, dataset: 'synthetic',
  };
}

/** Deterministic uint8 RGB [b,h,w,3] with smooth regions and texture (so the policy sees structure). */
export function rgbBatch(b: number, h: number, w: number, seed: number): HostTensor {
  const data = new Uint8Array(b * h * w * 3);
  let s = seed >>> 0;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296);
  for (let i = 0; i < b; i++) {
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
      const o = ((i * h + y) * w + x) * 3;
      const top = y < h / 2;
      data[o] = top ? 90 + (x % 7) * 3 : Math.floor(rnd() * 256);
      data[o + 1] = top ? 140 : Math.floor(rnd() * 256);
      data[o + 2] = top ? 200 + i * 20 : (x * 4 + y) & 255;
    }
  }
  return { dtype: 'uint8', shape: [b, h, w, 3], data };
}

export { VIT_NORMALIZATION };
