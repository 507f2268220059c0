// The demo pipeline end to end in its quick configuration: data, policy net, both Segmenters,
// evaluation, timing and the HTML report (the real demo is the same code with larger settings).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEMO_QUICK, runDemo } from '../../src/demo/demo.js';

test('demo --quick runs every stage and writes a self-contained report', async () => {
  const out = await mkdtemp(join(tmpdir(), 'cts-demo-'));
  const lines: string[] = [];
  const r = await runDemo({ ...DEMO_QUICK, out, workers: 1, log: (l) => lines.push(l) });
  assert.deepEqual(r.models.map((m) => m.name), ['baseline', 'cts']);
  assert.equal(r.models[0]!.tokens, 16);
  assert.equal(r.models[1]!.tokens, 16 - 3 * DEMO_QUICK.numShared);
  for (const m of r.models) {
    assert.ok(m.miou > 0 && m.miou <= 1, `mIoU ${m.miou}`);
    assert.ok(m.imagesPerSecond > 0);
    assert.ok(m.loss.length > 0);
    assert.ok(existsSync(m.modelPath));
  }
  assert.ok(r.policy.gmacs > 0);
  const html = await readFile(join(out, 'report.html'), 'utf8');
  assert.match(html, /images\/s of the baseline \(policy network included\)/);
  assert.match(html, /What was chosen/);
  assert.equal((html.match(/data:image\/png;base64/g) ?? []).length, 4 * Math.min(3, DEMO_QUICK.val));
  assert.ok(lines.some((l) => l.startsWith('[5/5]')));
});
