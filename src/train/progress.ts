// Training progress: a cli-progress bar on an interactive terminal, otherwise a line every few
// percent (CI logs stay short). Always to stderr so stdout carries only results.
import cliProgress from 'cli-progress';

/** Progress display of a training run. */
export class TrainProgress {
  private readonly bar: cliProgress.SingleBar | undefined;
  private lastLine = 0;

  constructor(private readonly total: number, start: number, private readonly log: (l: string) => void) {
    if (process.stderr.isTTY && !process.env.CI) {
      this.bar = new cliProgress.SingleBar({ format: 'train |{bar}| {value}/{total} loss {loss} {ips} img/s eta {eta_formatted}', stream: process.stderr, hideCursor: true }, cliProgress.Presets.shades_classic);
      this.bar.start(total, start, { loss: '-', ips: '-' });
    }
  }

  /** Reports a finished step. */
  tick(step: number, loss: number, imagesPerSecond: number): void {
    if (this.bar) return void this.bar.update(step, { loss: loss.toFixed(4), ips: imagesPerSecond.toFixed(1) });
    const every = Math.max(1, Math.floor(this.total / 20));
    if (step - this.lastLine >= every || step === this.total) {
      this.lastLine = step;
      this.log(`step ${step}/${this.total} loss ${loss.toFixed(4)} ${imagesPerSecond.toFixed(1)} img/s`);
    }
  }

  /** Removes the bar. */
  stop(): void {
    this.bar?.stop();
  }
}
