// The exported run directory as PyTorch sees it (skipped without python3 + torch + PyYAML): the file
// loads with torch.load(weights_only=True) and holds exactly our tensors; variant.yml loads with
// yaml.FullLoader into tuples; and the steps of the official `load_model` (read variant.yml beside
// the checkpoint, take net_kwargs, strict load_state_dict) find every key and shape that
// create_segmenter(net_kwargs) would create — the same ones the reference run's state dict has.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSafetensors } from '../../src/io/safetensors.node.js';
import type { ModelCheckpoint } from '../../src/cts/checkpoint.js';
import { initPolicyNet } from '../../src/models/policynet.js';
import { officialStateDict } from '../../src/export/official.js';
import { exportOfficialRun, importOfficialRun } from '../../src/export/official.node.js';
import { sharedDir } from '../helpers/fixtures.js';

/** The first python with torch, yaml and numpy: $CTS_PYTHON, python3, /usr/bin/python3. */
function findPython(): string | undefined {
  for (const py of [process.env.CTS_PYTHON, 'python3', '/usr/bin/python3']) {
    if (py && spawnSync(py, ['-c', 'import torch, yaml, numpy'], { stdio: 'ignore' }).status === 0) return py;
  }
  return undefined;
}

const shared = sharedDir();
const RUN = shared ? join(shared, 'reference/official-run/segmenter-tiny') : '';
const python = findPython();
const skip = !RUN || !existsSync(join(RUN, 'checkpoint.pth')) ? 'reference/official-run not found (../shared absent)'
  : !python ? 'no python3 with torch, yaml and numpy (set CTS_PYTHON)' : false;
if (skip) process.stdout.write(`# official-python: skipped: ${skip}\n`);

const SCRIPT = String.raw`
import json, struct, sys
from pathlib import Path
import numpy as np, torch, yaml

def read_safetensors(p):
    b = Path(p).read_bytes(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n]); base = 8 + n
    types = {'F32': np.float32, 'I64': np.int64}
    return {k: np.frombuffer(b[base + v['data_offsets'][0]:base + v['data_offsets'][1]], dtype=types[v['dtype']]).reshape(v['shape'])
            for k, v in h.items() if k != '__metadata__'}

def block(pre, d, ff):
    s = [('norm1.weight', (d,)), ('norm1.bias', (d,)), ('norm2.weight', (d,)), ('norm2.bias', (d,)),
         ('attn.qkv.weight', (3 * d, d)), ('attn.qkv.bias', (3 * d,)), ('attn.proj.weight', (d, d)), ('attn.proj.bias', (d,)),
         ('mlp.fc1.weight', (ff, d)), ('mlp.fc1.bias', (ff,)), ('mlp.fc2.weight', (d, ff)), ('mlp.fc2.bias', (d,))]
    return [(pre + k, v) for k, v in s]

def segmenter_spec(nk):
    # the parameters create_segmenter(net_kwargs) registers, in state_dict order
    d, p, n = nk['d_model'], nk['patch_size'], nk['n_cls']; h, w = nk['image_size']
    s = [('encoder.cls_token', (1, 1, d)), ('encoder.pos_embed', (1, (h // p) * (w // p) + 1, d)),
         ('encoder.patch_embed.proj.weight', (d, 3, p, p)), ('encoder.patch_embed.proj.bias', (d,))]
    for i in range(nk['n_layers']): s += block('encoder.blocks.%d.' % i, d, 4 * d)
    s += [('encoder.norm.weight', (d,)), ('encoder.norm.bias', (d,)), ('encoder.head.weight', (1000, d)), ('encoder.head.bias', (1000,))]
    dec = nk['decoder']
    assert dec['name'] == 'mask_transformer' and d // 64 >= 1
    s += [('decoder.cls_emb', (1, n, d)), ('decoder.proj_patch', (d, d)), ('decoder.proj_classes', (d, d))]
    for i in range(dec['n_layers']): s += block('decoder.blocks.%d.' % i, d, 4 * d)
    s += [('decoder.proj_dec.weight', (d, d)), ('decoder.proj_dec.bias', (d,)), ('decoder.decoder_norm.weight', (d,)),
          ('decoder.decoder_norm.bias', (d,)), ('decoder.mask_norm.weight', (n,)), ('decoder.mask_norm.bias', (n,))]
    return s

for case in json.loads(sys.argv[1]):
    path = Path(case['checkpoint'])
    with open(path.parent / 'variant.yml') as f:
        variant = yaml.load(f, Loader=yaml.FullLoader)        # what load_model does
    nk = variant['net_kwargs']
    assert isinstance(nk['image_size'], tuple) and len(nk['image_size']) == 2, nk['image_size']
    data = torch.load(path, map_location='cpu', weights_only=True)
    assert set(data) == {'model', 'n_cls', 'epoch'} and data['n_cls'] == nk['n_cls'], list(data)
    sd = data['model']
    assert type(sd).__name__ == 'OrderedDict'
    ours = read_safetensors(case['safetensors'])
    assert sorted(sd) == sorted(ours), 'key set'  # safetensors does not keep an order
    for k, t in sd.items():
        a = t.numpy()
        assert t.is_contiguous() and a.dtype == ours[k].dtype and a.shape == ours[k].shape and np.array_equal(a, ours[k]), k
    spec = segmenter_spec(nk)
    main = [(k, tuple(t.shape)) for k, t in sd.items() if not k.startswith('policy_net.')]
    assert main == spec, 'load_state_dict(strict=True) would fail'
    ref = read_safetensors(case['reference'])
    assert [(k, v.shape) for k, v in ref.items()] == spec, 'the reference run has the same keys and shapes'
    for k, v in ref.items():
        if not k.startswith('encoder.head.'): assert np.array_equal(v, sd[k].numpy()), k
    if case['cts']:
        assert nk['policy_method'] == 'policy_net' and isinstance(nk['policy_schedule'], tuple), nk
        n1, s = nk['policy_schedule']; h, w = nk['image_size']; p = nk['patch_size']
        assert n1 + 4 * s == (h // p) * (w // p) and s == case['cts'] and isinstance(nk['policynet_ckpt'], str)
        assert any(k.startswith('policy_net.') for k in sd)
    else:
        assert 'policy_method' not in nk
    print('ok', path)
`;

test('PyTorch loads the exported run directories (weights_only), and load_model\'s steps find every key and shape', { skip }, async () => {
  const ck = await importOfficialRun(join(RUN, 'checkpoint.pth'));
  const cts: ModelCheckpoint = {
    ...ck,
    weights: new Map([...ck.weights, ...[...initPolicyNet(5)].map(([k, v]) => [`policy_net.${k}`, v] as const)]),
    cts: { policy: 'policy_net', numShared: 3 },
  };
  const root = await mkdtemp(join(tmpdir(), 'cts-official-py-'));
  const cases = [];
  for (const [name, c] of [['plain', ck], ['cts', cts]] as const) {
    const r = await exportOfficialRun(c, join(root, name));
    const st = join(root, `${name}.safetensors`);
    await writeSafetensors(st, officialStateDict(c));
    cases.push({ checkpoint: r.checkpoint, safetensors: st, reference: join(RUN, 'expected/state_dict.safetensors'), cts: c.cts.numShared });
  }
  const out = execFileSync(python!, ['-c', SCRIPT, JSON.stringify(cases)], { encoding: 'utf8' });
  assert.equal(out.trim().split('\n').filter((l) => l.startsWith('ok ')).length, 2, out);
});
