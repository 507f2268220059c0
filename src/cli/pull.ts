// `cts-seg pull NAME` and `cts-seg models`: the model zoo from the command line (docs/MODELS.md).
import type { Command } from 'commander';
import { CACHE_ENV, OFFLINE_ENV, cacheDir } from '../zoo/cache.node.js';
import type { ConvertRun } from '../zoo/convert.node.js';
import type { ModelRecord } from '../zoo/registry.js';
import { listModels, pull } from '../zoo/pull.node.js';
import { MODEL_BASE_ENV } from '../zoo/registry.js';
import { progressFactory } from './prepare.js';
import { action } from './util.js';

const ENV_HELP =
  `\nEnvironment: ${CACHE_ENV} (cache folder, default $XDG_CACHE_HOME/cts-seg or ~/.cache/cts-seg), ` +
  `${OFFLINE_ENV}=1 (never use the network), ${MODEL_BASE_ENV} (fetch from a mirror instead of the official hosts).\nSee docs/MODELS.md.`;

/** What an embedder (or a test) may replace: the converter of official runs, and the records. */
export interface ZooCliOptions {
  convert?: ConvertRun;
  models?: readonly ModelRecord[];
}

/** Registers `pull` (the default converter and the registry's records unless `o` replaces them). */
export function registerPull(program: Command, o: ZooCliOptions = {}): void {
  program
    .command('pull')
    .description('download a model of the zoo (cts-seg models lists them) into the cache, convert it to a cts-seg checkpoint and print its path; a cached model is checked and reused')
    .argument('<name>', 'model name, e.g. seg_tiny_mask_ade20k or vit_small_patch16_384')
    .option('--force', 'drop the cached copy and download it again (after a checksum error)')
    .addHelpText('after', ENV_HELP)
    .action(action(async (name: string, opts: { force?: boolean }) => {
      const log = (line: string) => process.stderr.write(`${line}\n`);
      const r = await pull(name, { ...(opts.force ? { force: true } : {}), ...(o.convert ? { convert: o.convert } : {}), ...(o.models ? { models: o.models } : {}), progress: progressFactory(), log });
      if (!r.downloaded && !r.converted) log(`${r.record.name} is in the cache`);
      process.stdout.write(`${r.path}\n`);
    }));
}

const MB = 2 ** 20;
const size = (n: number | undefined) => (n === undefined ? '-' : n >= 1024 * MB ? `${(n / 1024 / MB).toFixed(1)} GiB` : `${(n / MB).toFixed(1)} MiB`);
const pct = (v: number | undefined) => (v === undefined ? '-' : v.toFixed(1));

/** Registers `models`: the zoo with dataset, official mIoU, size and cache state. */
export function registerModels(program: Command, o: ZooCliOptions = {}): void {
  program
    .command('models')
    .description('list the models cts-seg pull can fetch: name, dataset, official mIoU (single/multi-scale), size and whether it is cached')
    .addHelpText('after', ENV_HELP)
    .action(action(async () => {
      const rows = (await listModels(o.models ? { models: o.models } : {})).map(({ record: r, cached, cachedBytes }) => [
        r.name, r.title, r.dataset, r.miou ? `${pct(r.miou.ss)} / ${pct(r.miou.ms)}` : '-', r.params ?? '-',
        size(r.downloadBytes ?? cachedBytes), cached ? 'yes' : 'no',
      ]);
      const table = [['name', 'release', 'dataset', 'mIoU ss / ms', 'params', 'size', 'cached'], ...rows];
      const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
      for (const row of table) process.stdout.write(`${row.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()}\n`);
      process.stdout.write(`\ncache: ${cacheDir()}\n`);
    }));
}
