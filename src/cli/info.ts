// `cts-seg info`: what a model is before running it: configuration, parameter counts, the token
// budgets at its crop and the GMACs of each (counted on the graph, spec §9.3 convention).
import type { Command } from 'commander';
import { CtsError } from '../base/errors.js';
import { createSegmenterConfig, type SegmenterConfig } from '../models/config.js';
import { loadCheckpoint } from '../cts/checkpoint.node.js';
import { segmenterSpec } from '../models/segmenter.js';
import { policyNetParamCount } from '../models/policynet.js';
import { sweepBudgets } from '../bench/setup.js';
import { fmtGmac, toGmac } from '../graph/macs.js';
import { segmenterMacs } from '../cts/macs.js';
import { action, posInt } from './util.js';
import { checkpointOption, cropSizeOption, numSharedOption, policyWidthOption } from './options.js';

interface InfoOpts {
  backbone?: string;
  decoder?: string;
  cropSize?: [number, number];
  classes?: number;
  checkpoint?: string;
  policyWidth?: number;
  numShared?: number;
  json?: boolean;
}

/** Registers the `info` command. */
export function registerInfo(program: Command): void {
  const cmd = program
    .command('info')
    .description('describe a model: configuration, parameter counts, token budgets at its crop and GMACs per image for each (no weights are needed for a preset)')
    .option('--backbone <name>', 'vit-ti, vit-s, vit-b or vit-l (default vit-s; not with --checkpoint)')
    .option('--decoder <name>', 'mask_transformer or linear (default mask_transformer)');
  cropSizeOption(cmd, { note: 'default 512, or the checkpoint\'s crop', aliases: ['--image-size'] });
  cmd.option('--classes <K>', 'number of classes (default 150)', posInt('--classes'));
  checkpointOption(cmd, { note: 'describe this checkpoint instead of a preset' });
  policyWidthOption(cmd, { note: 'default 1, or the checkpoint\'s' });
  numSharedOption(cmd, { note: 'also list this budget, besides the 0/15/30/44% ones' });
  cmd
    .option('--json', 'print one JSON object')
    .action(action(runInfo));
}

const count = (spec: Map<string, { shape: number[] }>, prefix: string) =>
  [...spec].filter(([k]) => k.startsWith(prefix)).reduce((a, [, v]) => a + v.shape.reduce((x, y) => x * y, 1), 0);

async function runInfo(o: InfoOpts): Promise<void> {
  let config: SegmenterConfig;
  let size: [number, number];
  let policyWidth = o.policyWidth;
  let source: string;
  if (o.checkpoint) {
    for (const [flag, v] of [['--backbone', o.backbone], ['--decoder', o.decoder], ['--classes', o.classes]] as const) {
      if (v !== undefined) throw new CtsError(`${flag} comes from the checkpoint ${o.checkpoint}; leave it out`);
    }
    const ck = await loadCheckpoint(o.checkpoint);
    config = ck.config;
    size = o.cropSize ?? ck.cropSize;
    policyWidth ??= ck.cts.policyWidth;
    source = `checkpoint ${o.checkpoint} (policy ${ck.cts.policy}, num_shared ${ck.cts.numShared}${ck.dataset ? `, dataset ${ck.dataset}` : ''})`;
  } else {
    if (o.decoder !== undefined && o.decoder !== 'mask_transformer' && o.decoder !== 'linear') throw new CtsError(`--decoder must be mask_transformer or linear, got '${o.decoder}'`);
    size = o.cropSize ?? [512, 512];
    config = createSegmenterConfig(o.backbone ?? 'vit-s', {
      n_cls: o.classes ?? 150,
      decoder: o.decoder ?? 'mask_transformer',
      pos_grid: [Math.ceil(size[0] / 16), Math.ceil(size[1] / 16)],
    });
    source = 'preset';
  }
  const spec = segmenterSpec(config);
  const params = { encoder: count(spec, 'encoder.'), decoder: count(spec, 'decoder.'), policy_net: policyNetParamCount(policyWidth !== undefined ? { width: policyWidth } : {}) };
  const shareable = size[0] % (2 * config.patch_size) === 0 && size[1] % (2 * config.patch_size) === 0;
  const list = shareable ? sweepBudgets(size[0], size[1], config.patch_size) : [0];
  if (o.numShared !== undefined && !list.includes(o.numShared)) list.push(o.numShared);
  const budgets = list.sort((a, b) => a - b).map((S) => {
    const m = segmenterMacs(config, { size, numShared: S, ...(policyWidth !== undefined ? { policyWidth } : {}) });
    const b = m.budget, g = toGmac;
    return {
      num_shared: S,
      num_not_shared: b.numNotShared,
      tokens_per_image: m.tokens,
      reduction: Math.round(b.reduction * 10000) / 10000,
      gmacs: { total: g(m.total), encoder: g(m.encoder), decoder: g(m.decoder), policy: g(m.policy), upsample: g(m.upsample) },
    };
  });
  const info = { source, config, image_size: size, policy_width: policyWidth ?? 1, parameters: params, budgets };
  if (o.json) return void process.stdout.write(`${JSON.stringify(info)}\n`);
  const M = (n: number) => `${(n / 1e6).toFixed(2)} M`;
  const c = config;
  const lines = [
    `model       ${c.backbone} (${source})`,
    `encoder     D ${c.d_model}, ${c.n_layers} layers, ${c.n_heads} heads, MLP ${c.d_ff}, patch ${c.patch_size}, pos grid ${c.pos_grid.join('x')}`,
    `decoder     ${c.decoder}${c.decoder === 'mask_transformer' ? `, ${c.decoder_n_layers} layers, ${c.decoder_n_heads} heads, MLP ${c.decoder_d_ff}` : ''}, ${c.n_cls} classes`,
    `parameters  encoder ${M(params.encoder)}, decoder ${M(params.decoder)}, policy net ${M(params.policy_net)} (width ${policyWidth ?? 1})`,
    `crop        ${size[0]}x${size[1]}: ${size[0] / c.patch_size}x${size[1] / c.patch_size} patches${shareable ? `, ${(size[0] / 32) * (size[1] / 32)} superpatches` : ' (not a multiple of 32: no sharing)'}`,
    '',
    'shared  not shared  tokens  reduction  GMAC total  encoder  decoder  policy  upsample',
    ...budgets.map((b) =>
      [String(b.num_shared).padStart(6), String(b.num_not_shared).padStart(10), String(b.tokens_per_image).padStart(6), `${(100 * b.reduction).toFixed(1)}%`.padStart(9),
        fmtGmac(b.gmacs.total).padStart(10), fmtGmac(b.gmacs.encoder).padStart(7), fmtGmac(b.gmacs.decoder).padStart(7), fmtGmac(b.gmacs.policy).padStart(6),
        fmtGmac(b.gmacs.upsample).padStart(8)].join('  ')),
    '',
    'GMAC: multiply-adds of MatMul/Gemm/Conv plus 4 per output element of bilinear resizes (fvcore\'s convention, spec §9.3); the policy network runs only when tokens are shared.',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}
