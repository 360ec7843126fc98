/**
 * Polling with a deadline: tests wait for a state, never for a fixed time, so they are as fast as
 * the machine allows and fail with the name of what never happened.
 */

export interface WaitOptions {
  /** Give up after this long (ms). */
  readonly timeoutMs?: number;
  /** Pause between checks (ms). */
  readonly intervalMs?: number;
}

const DEFAULT_TIMEOUT_MS = 100_000;
const DEFAULT_INTERVAL_MS = 100;

/** Calls `check` until it returns something other than undefined or false, and returns that. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  options: WaitOptions | number = {},
): Promise<T> {
  const { timeoutMs = DEFAULT_TIMEOUT_MS, intervalMs = DEFAULT_INTERVAL_MS } =
    typeof options === 'number' ? { timeoutMs: options } : options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() >= deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
