// What the CLI says about long work on stderr: on a terminal, a progress line once a step has
// taken about two seconds; with --time, one summary line of every step's time at the end.
const SLOW_MS = 2000;

export class Progress {
  private readonly steps: { name: string; ms: number }[] = [];
  private drawn = false;
  private lastDraw = 0;

  constructor(
    /** Draw progress lines (stderr is a terminal). */
    private readonly live: boolean,
    /** Print the summary at the end (--time). */
    private readonly summary: boolean,
  ) {}

  static forProcess(time: boolean): Progress {
    return new Progress(process.stderr.isTTY === true, time);
  }

  /**
   * Runs one step. `tick(done, total)` reports how far it has come (sync work cannot be
   * watched otherwise); async work is also redrawn by a timer while it waits.
   */
  async step<T>(name: string, work: (tick: (done: number, total: number) => void) => T | Promise<T>): Promise<T> {
    const start = performance.now();
    let fraction: number | undefined;
    const draw = () => {
      const now = performance.now();
      if (!this.live || now - start < SLOW_MS || now - this.lastDraw < 200) return;
      this.lastDraw = now;
      this.drawn = true;
      const done = fraction === undefined ? "" : ` ${Math.floor(fraction * 100)}%`;
      process.stderr.write(`\r\x1b[K${name}...${done} ${((now - start) / 1000).toFixed(1)} s`);
    };
    const timer = this.live ? setInterval(draw, 250) : undefined;
    timer?.unref();
    try {
      return await work((done, total) => {
        fraction = total > 0 ? done / total : undefined;
        draw();
      });
    } finally {
      clearInterval(timer);
      const ms = performance.now() - start;
      this.steps.push({ name, ms });
      if (this.drawn) process.stderr.write(`\r\x1b[K${name}: ${(ms / 1000).toFixed(1)} s\n`);
      this.drawn = false;
    }
  }

  /** The --time summary: every step's time, then the total. */
  finish(): void {
    if (!this.summary || this.steps.length === 0) return;
    const total = this.steps.reduce((s, x) => s + x.ms, 0);
    const seconds = (ms: number) => `${(ms / 1000).toFixed(ms < 10_000 ? 3 : 1)} s`;
    process.stderr.write(`time: ${this.steps.map((s) => `${s.name} ${seconds(s.ms)}`).join(", ")}; total ${seconds(total)}\n`);
  }
}
