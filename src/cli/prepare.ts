// `cts-seg prepare ade20k|pcontext|cityscapes DIR`: download and convert a dataset into DIR/<dataset>/ (spec §7).
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { CtsError } from '../base/errors.js';
import { makeOutputDir, removeCreatedDir } from '../io/fs.node.js';
import { PREPARABLE, URL_BASE_ENV, prepareDataset, type ProgressFactory, type ProgressTask } from '../data/prepare.js';
import { action, posInt } from './util.js';

interface PrepareCliOpts {
  urlBase?: string;
  username?: string;
  password?: string;
  retries?: number;
}

/** Registers the `prepare` command. */
export function registerPrepare(program: Command): void {
  program
    .command('prepare')
    .description(
      'download, verify, extract and convert a dataset into DIR/<dataset>/ in the layout of the reference code ' +
        '(then pass DIR/<dataset> to the other commands). Interrupted runs resume; a finished DIR is left as it is.',
    )
    .argument('<dataset>', `one of ${PREPARABLE.join(', ')}`)
    .argument('<dir>', 'root folder for datasets (the reference code\'s $DATASET); created if missing')
    .option('--url-base <url>', `fetch every file from <url>/<file name> instead of the official hosts (mirrors, tests); env ${URL_BASE_ENV} does the same`)
    .option('--username <name>', 'Cityscapes account name (default: env CITYSCAPES_USERNAME)')
    .option('--password <secret>', 'Cityscapes password (default: env CITYSCAPES_PASSWORD, preferable since command lines are visible to other users); never printed')
    .option('--retries <n>', 'automatic resumes of an interrupted download (default 3)', posInt('--retries'))
    .addHelpText('after', '\nDownloads go to DIR/<dataset>/downloads/ and are checked against the official SHA-1s where the reference gives them.\nSee docs/DATASETS.md for the layouts and label conventions.')
    .action(action(runPrepare));
}

async function runPrepare(dataset: string, dir: string, o: PrepareCliOpts): Promise<void> {
  if (!(PREPARABLE as readonly string[]).includes(dataset)) {
    throw new CtsError(`cannot prepare '${dataset}': expected one of ${PREPARABLE.join(', ')}`);
  }
  const log = (line: string) => process.stderr.write(`${line}\n`);
  // a failed first run leaves no empty folders; partial downloads stay for the next run to resume
  const created = await makeOutputDir(dir, 'dataset folder');
  const r = await prepareDataset(dataset, dir, {
    ...(o.urlBase ? { urlBase: o.urlBase } : {}),
    ...(o.username ? { username: o.username } : {}),
    ...(o.password ? { password: o.password } : {}),
    ...(o.retries ? { retries: o.retries } : {}),
    log,
    progress: progressFactory(),
  }).catch(async (e: unknown) => {
    await removeCreatedDir(created, { keepFiles: true });
    throw e;
  });
  if (r.alreadyDone) log(`${dataset} is already prepared in ${r.dir} (delete ${r.dir}/.cts-prepared.json to redo the checks)`);
  process.stdout.write(`${r.dir}\t${Object.entries(r.splits).map(([s, n]) => `${s}=${n}`).join(' ')}\n`);
}

const MB = 1024 * 1024;
const fmt = (n: number, unit: 'bytes' | 'files') => (unit === 'bytes' ? `${(n / MB).toFixed(1)} MiB` : String(n));

/** A cli-progress bar on an interactive stderr; elsewhere (CI, logs) a line every 10 % or 30 s. */
export function progressFactory(): ProgressFactory {
  const tty = process.stderr.isTTY === true && !process.env.CI;
  return (label, unit) => (tty ? ttyBar(label, unit) : lineProgress(label, unit));
}

function ttyBar(label: string, unit: 'bytes' | 'files'): ProgressTask {
  let bar: cliProgress.SingleBar | undefined;
  return {
    update(done, total) {
      if (!bar) {
        bar = new cliProgress.SingleBar({
          stream: process.stderr,
          format: `${label} [{bar}] {percentage}% {done}/{all} eta {eta_formatted}`,
          hideCursor: true,
          clearOnComplete: false,
        }, cliProgress.Presets.shades_classic);
        bar.start(total ?? 0, done, { done: fmt(done, unit), all: total ? fmt(total, unit) : '?' });
      }
      if (total !== undefined) bar.setTotal(total);
      bar.update(done, { done: fmt(done, unit), all: total ? fmt(total, unit) : '?' });
    },
    stop() {
      bar?.stop();
    },
  };
}

function lineProgress(label: string, unit: 'bytes' | 'files'): ProgressTask {
  let lastStep = -1, lastTime = 0, printed = -1;
  let latest: { done: number; total: number | undefined } | undefined;
  const print = (done: number, total: number | undefined) => {
    printed = done;
    process.stderr.write(`${label}: ${fmt(done, unit)}${total ? ` of ${fmt(total, unit)} (${Math.floor((100 * done) / total)}%)` : ''}\n`);
  };
  return {
    update(done, total) {
      latest = { done, total };
      const step = total ? Math.floor((10 * done) / total) : -1;
      const now = Date.now();
      if ((total && step > lastStep) || now - lastTime > 30_000) {
        lastStep = step;
        lastTime = now;
        print(done, total);
      }
    },
    stop() {
      if (latest && latest.done !== printed) print(latest.done, latest.total);
    },
  };
}
