// `cts-seg demo`: the main job on the built-in default (see src/demo/demo.ts).
import type { Command } from 'commander';
import { DEMO_DEFAULTS, DEMO_QUICK, runDemo } from '../demo/demo.js';
import { action, posInt } from './util.js';

/** Registers `demo`. */
export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('generate synthetic street scenes, train a policy net and Segmenter with and without token sharing, evaluate, time, and write an HTML report')
    .option('--out <dir>', 'output folder (data, runs, report.html)', 'runs/demo')
    .option('--quick', 'a tiny configuration that finishes in seconds (smoke test)')
    .option('--steps <n>', `Segmenter training steps per model (default ${DEMO_DEFAULTS.segSteps})`, posInt('--steps'))
    .option('--policy-steps <n>', `policy-network training steps (default ${DEMO_DEFAULTS.policySteps})`, posInt('--policy-steps'))
    .option('--workers <n>', 'data-loading worker threads', posInt('--workers'))
    .action(action(async (o: { out: string; quick?: boolean; steps?: number; policySteps?: number; workers?: number }) => {
      const base = o.quick ? DEMO_QUICK : DEMO_DEFAULTS;
      const r = await runDemo({
        ...base, out: o.out, log: (l) => process.stderr.write(l + '\n'),
        ...(o.steps ? { segSteps: o.steps } : {}), ...(o.policySteps ? { policySteps: o.policySteps } : {}), ...(o.workers ? { workers: o.workers } : {}),
      });
      const [b, c] = r.models;
      process.stdout.write(
        `baseline: mIoU ${(100 * b!.miou).toFixed(2)}, ${b!.imagesPerSecond.toFixed(1)} img/s, ${b!.tokens} tokens\n` +
          `CTS:      mIoU ${(100 * c!.miou).toFixed(2)}, ${c!.imagesPerSecond.toFixed(1)} img/s, ${c!.tokens} tokens ` +
          `(${(c!.imagesPerSecond / b!.imagesPerSecond).toFixed(2)}x speed, ${((100 * c!.miou) / b!.miou).toFixed(1)}% of the baseline mIoU)\n` +
          `report: ${o.out}/report.html (${r.seconds.toFixed(0)} s)\n`,
      );
    }));
}
