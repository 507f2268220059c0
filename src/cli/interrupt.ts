// Ctrl-C or a scheduler's SIGTERM stops a training run cleanly: the step in flight finishes, the last
// completed step is checkpointed and the command exits 130 / 143 (128 + signal number, as a shell
// reports a process killed by it). A second signal means "now": exit at once, without a checkpoint.
import { CtsError } from '../base/errors.js';

const CODES = { SIGINT: 130, SIGTERM: 143 } as const;
type StopSignal = keyof typeof CODES;

/** Runs `fn` with an AbortSignal that the first SIGINT/SIGTERM aborts; returns its result and the signal received. */
export async function withInterrupts<T>(what: string, fn: (signal: AbortSignal) => Promise<T>): Promise<{ result: T; stoppedBy?: StopSignal }> {
  const ctl = new AbortController();
  let stoppedBy: StopSignal | undefined;
  const handlers = (Object.keys(CODES) as StopSignal[]).map((sig) => {
    const h = () => {
      if (stoppedBy) {
        process.stderr.write(`cts-seg: ${sig} again: exiting at once, without a checkpoint\n`);
        process.exit(CODES[sig]); // the 'exit' listeners still release the run-folder lock
      }
      stoppedBy = sig;
      process.stderr.write(`cts-seg: ${sig}: stopping ${what} after the step in flight and writing a checkpoint (send it again to exit at once)\n`);
      ctl.abort(new CtsError(`${what} stopped by ${sig}`));
    };
    process.on(sig, h);
    return [sig, h] as const;
  });
  try {
    const result = await fn(ctl.signal);
    return { result, ...(stoppedBy ? { stoppedBy } : {}) };
  } finally {
    // the run is over but the process still closes workers and the runtime: a signal now means "quit"
    for (const [sig, h] of handlers) {
      process.off(sig, h);
      process.on(sig, () => process.exit(CODES[sig]));
    }
  }
}

/** Reports where an interrupted run left its checkpoint and sets the exit code of the signal. */
export function reportInterrupted(sig: StopSignal, step: number, checkpoint: string): void {
  process.stderr.write(`cts-seg: stopped by ${sig} after step ${step}; checkpoint: ${checkpoint} (run the same command again to resume)\n`);
  process.exitCode = CODES[sig];
}
