/**
 * How many creates may be handled at once beside Kling's callbacks, adapted to how long the callbacks
 * take (additive increase, multiplicative decrease, as TCP does for its window):
 *
 * - in each interval in which some callback took longer than the target, the share halves (down to 1);
 * - in each interval in which callbacks all kept to it, it grows by one (up to the full limit);
 * - once no callback has been seen for a while, creates get the full limit back, and the next callbacks
 *   start from half of it again.
 *
 * Why adapt rather than fix a share: on a saturated machine every create handled beside a callback
 * lengthens the event-loop turns the callback waits through, so how many creates a callback can bear
 * depends on the machine and its load. A fixed half let callbacks wait 300–950 ms at p99 in the bench's
 * burst; a fixed 1 cost the burst 27% of its pace, however well callbacks were doing. Measured by the
 * callback's own time in the API (its start to its answer), which spans at least two turns of the loop
 * (its statement, then its answer), so it lengthens as soon as creates crowd the loop.
 */
export interface CreatesBesideCallbacks {
  /** The creates' limit now. */
  limit(): number;
  /** True while callbacks are coming in (the share applies rather than the full limit). */
  callbacksComing(): boolean;
  callbackStarted(): void;
  /** Returns true when the limit rose (creates waiting may go). */
  callbackFinished(elapsedMs: number): boolean;
}

export interface CreatesBesideCallbacksOptions {
  /** The limit with no callbacks about (API_MAX_CONCURRENT_CREATES). */
  max: number;
  /** A callback's time in the API above which creates give way further (API_CALLBACK_TARGET_MS). */
  targetMs: number;
  /** How often the share may change. */
  intervalMs?: number;
  /** After this long without a callback, creates have the full limit again. */
  quietAfterMs?: number;
  now?: () => number;
}

export function createsBesideCallbacks({ max, targetMs, intervalMs = 100, quietAfterMs = 1_000, now = () => performance.now() }: CreatesBesideCallbacksOptions): CreatesBesideCallbacks {
  const start = Math.max(1, Math.floor(max / 2));
  let share = start;
  let inFlight = 0;
  let lastSeen = Number.NEGATIVE_INFINITY;
  let intervalStarted = Number.NEGATIVE_INFINITY;
  let slowInInterval = false;

  const quiet = (at: number): boolean => inFlight === 0 && at - lastSeen >= quietAfterMs;

  return {
    limit: () => (quiet(now()) ? max : share),
    callbacksComing: () => !quiet(now()),
    callbackStarted() {
      const at = now();
      if (quiet(at)) {
        share = start;
        intervalStarted = at;
        slowInInterval = false;
      }
      inFlight++;
      lastSeen = at;
    },
    callbackFinished(elapsedMs) {
      const at = now();
      inFlight--;
      lastSeen = at;
      if (elapsedMs > targetMs) slowInInterval = true;
      if (at - intervalStarted < intervalMs) return false;
      const before = share;
      share = slowInInterval ? Math.max(1, Math.floor(share / 2)) : Math.min(max, share + 1);
      intervalStarted = at;
      slowInInterval = false;
      return share > before;
    },
  };
}
