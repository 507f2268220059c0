// `node scripts/int8-accuracy.mjs [REFERENCE_DIR]`: int8 against fp32 on the official reference cases
// (default $CTS_SHARED_DIR/reference, else ../shared/reference beside the repository: tiny96 and camvid352, each without sharing and with CTS given the
// reference policy logits). Prints, per case, the argmax agreement of int8 with fp32 and with the
// official PyTorch argmax, and the logit error of int8 against fp32 (max and mean |difference|, and
// the RMS of the fp32 logits as scale). Runs on the compiled library in dist/ (`npm run build` first).
import '../dist/src/node/register.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readNpy } from '../dist/src/io/npy.js';
import { readSafetensors } from '../dist/src/io/safetensors.node.js';
import { segmenterForward } from '../dist/src/cts/forward.js';
import { LogitStats } from '../dist/src/eval/compare.js';

const root = process.argv[2] ?? (process.env.CTS_SHARED_DIR ? join(process.env.CTS_SHARED_DIR, 'reference') : new URL('../../shared/reference', import.meta.url).pathname);

/** Fraction of pixels where the argmax over classes of logits [B,K,H,W] equals `labels` [B,H,W]. */
function agreement(logits, labels) {
  const [b, k, h, w] = logits.shape, plane = h * w, l = logits.data;
  let same = 0;
  for (let n = 0; n < b; n++) for (let p = 0; p < plane; p++) {
    let best = 0;
    for (let c = 1; c < k; c++) if (l[(n * k + c) * plane + p] > l[(n * k + best) * plane + p]) best = c;
    if (best === labels.data[n * plane + p]) same++;
  }
  return same / (b * plane);
}

const pct = (x) => `${(100 * x).toFixed(3)}%`;
for (const name of ['tiny96', 'camvid352']) {
  const dir = join(root, name);
  if (!existsSync(dir)) {
    console.log(`${name}: not found under ${root}, skipped`);
    continue;
  }
  const { tensors, metadata } = await readSafetensors(join(dir, 'weights.safetensors'));
  const input = await readNpy(join(dir, 'input.npy'));
  for (const variant of ['no_sharing', 'cts']) {
    const o = { metadata };
    if (variant === 'cts') {
      const policyLogits = await readNpy(join(dir, 'cts/policy_logits.npy'));
      const m2 = await readNpy(join(dir, 'cts/mask_scale2.npy'));
      Object.assign(o, { policyLogits, numShared: m2.data.reduce((a, v) => a + v, 0) / input.shape[0] });
    }
    const fp = await segmenterForward(tensors, input, { ...o, precision: 'fp32' });
    const i8 = await segmenterForward(tensors, input, { ...o, precision: 'int8' });
    const st = new LogitStats();
    st.add(fp.logits, i8.logits);
    const r = st.result();
    const ref = await readNpy(join(dir, variant, 'argmax.npy'));
    console.log(`${name} ${variant}: int8 vs fp32 argmax agreement ${pct(r.argmaxAgreement)} (${r.pixels} pixels), ` +
      `logit error max ${r.maxAbsError.toPrecision(3)} mean ${r.meanAbsError.toPrecision(3)} (fp32 logit RMS ${r.referenceRms.toPrecision(3)}); ` +
      `argmax agreement with PyTorch: fp32 ${pct(agreement(fp.logits, ref))}, int8 ${pct(agreement(i8.logits, ref))}`);
  }
}
