/**
 * Busy time of a pipeline stage: the wall time during which at least one of its operations was
 * running. Summing each operation's duration would count concurrent fetches (or decodes on
 * several threads) several times and say "fetch took 40 s" of a 10 s job; busy time stays
 * comparable with inference time and with the job's wall time.
 */
export class StageClock {
  private active = 0;
  private since = 0;
  private busyMs = 0;

  /** Times `operation` as part of this stage. */
  async time<T>(operation: () => Promise<T>): Promise<T> {
    this.start();
    try {
      return await operation();
    } finally {
      this.stop();
    }
  }

  start(): void {
    if (this.active++ === 0) this.since = performance.now();
  }

  stop(): void {
    if (--this.active === 0) this.busyMs += performance.now() - this.since;
  }

  /** Busy milliseconds so far, including a stretch still running. */
  get ms(): number {
    return this.busyMs + (this.active > 0 ? performance.now() - this.since : 0);
  }
}
