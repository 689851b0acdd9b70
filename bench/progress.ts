// One progress line on stderr for anything that runs longer than a few seconds: rewritten in
// place on a terminal, a plain line every few seconds otherwise (CI logs, pipes). Tables go to
// stdout, so `npm run bench -- x > out.txt` keeps only the tables.

const TTY_INTERVAL_MS = 250;
const PLAIN_INTERVAL_MS = 5000;
/** Steps shorter than this print no progress at all. */
const QUIET_MS = 3000;

export class Progress {
  private readonly tty = process.stderr.isTTY === true;
  private timer: NodeJS.Timeout | null = null;
  private shown = false;
  private startedAt = 0;
  private lastPlainAt = 0;

  /** Start a step; `render` is called each tick and returns the line (without the elapsed time). */
  start(render: () => string): void {
    this.stop();
    this.startedAt = performance.now();
    this.lastPlainAt = this.startedAt;
    this.timer = setInterval(() => this.tick(render), TTY_INTERVAL_MS);
    this.timer.unref();
  }

  private tick(render: () => string): void {
    const now = performance.now();
    const elapsedMs = now - this.startedAt;
    if (elapsedMs < QUIET_MS) return;
    const line = `  … ${render()} [${(elapsedMs / 1000).toFixed(0)} s]`;
    if (this.tty) {
      const width = process.stderr.columns ?? 120;
      process.stderr.write(`\r\x1b[2K${line.slice(0, width - 1)}`);
      this.shown = true;
    } else if (now - this.lastPlainAt >= PLAIN_INTERVAL_MS) {
      this.lastPlainAt = now;
      process.stderr.write(`${line}\n`);
    }
  }

  /** End the step and clear the line. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.shown && this.tty) process.stderr.write('\r\x1b[2K');
    this.shown = false;
  }

  /** Run `work` with a fixed-label progress line (for set-up steps such as starting a cluster). */
  async step<T>(label: string, work: () => Promise<T>): Promise<T> {
    this.start(() => label);
    try {
      return await work();
    } finally {
      this.stop();
    }
  }
}
