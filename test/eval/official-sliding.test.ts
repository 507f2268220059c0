// The official evaluation protocol, pinned against the official code's own output
// (../shared/reference/official-run, README there): the sliding-window `inference()` of
// rstrudel/segmenter on a full 480x360 CamVid frame, window 96, stride 64, with and without the flip
// view. cts-seg's probabilities must equal the official ones within 1e-5 (every 4th row and column is
// stored), and its class map the official argmax wherever the official top two classes differ by at
// least 1e-4 (near-ties may flip in float32).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Segmenter } from '../../src/index.js';
import { parseCheckpoint } from '../../src/cts/checkpoint.js';
import { readSafetensors } from '../../src/io/safetensors.node.js';
import { readNpy } from '../../src/io/npy.js';
import { sharedDir } from '../helpers/fixtures.js';

const dir = sharedDir() ? join(sharedDir()!, 'reference/official-run/segmenter-tiny') : undefined;
const skip = dir && existsSync(dir) ? false : 'shared/reference/official-run is absent (set CTS_SHARED_DIR)';

test('sliding-window probabilities equal the official inference(), with and without flip', { skip }, async () => {
  const exp = join(dir!, 'expected');
  // the fixture's weights in the official names; the run's variant.yml says 2 encoder heads, 1 decoder head
  const ckpt = parseCheckpoint(await readSafetensors(join(exp, 'state_dict.safetensors')), 'state_dict.safetensors', { encoderHeads: 2, decoderHeads: 1 });
  assert.deepEqual(ckpt.cropSize, [96, 96]);
  const u8 = await readNpy(join(exp, 'image_u8.npy'));
  const image = { data: u8.data as Uint8Array, width: 480, height: 360, channels: 3 as const };
  const seg = await Segmenter.load(ckpt, { windowBatch: 4 });
  try {
    for (const [flip, name] of [[false, 'sliding'], [true, 'sliding_flip']] as const) {
      const want = (await readNpy(join(exp, `${name}_stride4.npy`))).data as Float32Array;
      const wantArgmax = (await readNpy(join(exp, `${name}_argmax.npy`))).data as Uint8Array;
      // the official call: no resize (360 >= 96), windows every 64 px, merged, softmax (flip: probabilities averaged)
      const r = await seg.predict({ width: 480, height: 360, data: image.data }, { protocol: {}, windowStride: 64, flip, probabilities: true });
      assert.equal(r.windows, flip ? 84 : 42);
      const K = 11, n = 360 * 480, p = r.probabilities!;
      let worst = 0;
      for (let k = 0; k < K; k++) {
        for (let y = 0; y < 90; y++) {
          for (let x = 0; x < 120; x++) worst = Math.max(worst, Math.abs(p[k * n + 4 * y * 480 + 4 * x]! - want[(k * 90 + y) * 120 + x]!));
        }
      }
      assert.ok(worst < 1e-5, `${name}: max |probability difference| ${worst.toExponential(2)}`);
      // argmax over the full image wherever our own top-2 gap is clear (the official gap is not stored at full size)
      let compared = 0, differ = 0;
      for (let i = 0; i < n; i++) {
        let a = -1, b = -1;
        for (let k = 0; k < K; k++) {
          const v = p[k * n + i]!;
          if (v > a) (b = a), (a = v);
          else if (v > b) b = v;
        }
        if (a - b < 1e-4) continue;
        compared++;
        if (r.classes[i] !== wantArgmax[i]) differ++;
      }
      assert.ok(compared > 0.99 * n, `${name}: only ${compared} clear pixels`);
      assert.equal(differ, 0, `${name}: ${differ} of ${compared} clear pixels differ from the official argmax`);
      console.log(`# ${name}: max |dp| ${worst.toExponential(2)}; argmax equal on ${compared} of ${n} pixels with a top-2 gap >= 1e-4`);
    }
  } finally {
    await seg.dispose();
  }
});
