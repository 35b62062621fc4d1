/**
 * How many creates may be handled at once beside Kling's callbacks, and how closely they may follow one
 * another, adapted to how long the callbacks take (additive increase, multiplicative decrease, as TCP
 * does for its window):
 *
 * - in each interval in which some callback was slow (below), the share halves (down to 1);
 *   once it is 1, the pause between the starts of two creates doubles instead (from `pauseStartMs` up
 *   to `pauseMaxMs`, i.e. down to 10 creates a second by default);
 * - in each interval in which callbacks all kept to it and creates were held back, the pause shrinks by
 *   a step of the rate it allows (`rateStepPerS`) until it is gone, then the share grows by one (up to
 *   the full limit);
 * - once no callback has been seen for the quiet time, creates get the full limit back, and the next
 *   callbacks start from half of it again.
 *
 * A callback is slow when it took longer than the target beyond the fastest callback of the last 30–60 s
 * (its time with nothing to wait for, as LEDBAT measures queueing delay against a base delay): a
 * Postgres farther away makes every callback longer, and that is no reason to hold creates back.
 *
 * Why adapt rather than fix a share: on a saturated machine every create handled beside a callback
 * lengthens the event-loop turns the callback waits through, so how many creates a callback can bear
 * depends on the machine and its load. A fixed half let callbacks wait 300–950 ms at p99 in the bench's
 * burst; a fixed 1 cost the burst 27% of its pace, however well callbacks were doing. Measured by the
 * callback's own time in the API (its start to its answer), which spans at least two turns of the loop
 * (its statement, then its answer), so it lengthens as soon as creates crowd the loop.
 *
 * Why a pause below a share of one: one create at a time still arrives as fast as the last one is
 * stored, a few milliseconds apart, and every create brings its callbacks and reads after it, so the
 * machine stayed saturated and callback → visible kept a p99 of 75–250 ms (bench/README.md, tenth
 * session). Spacing creates out is the only lever left that leaves the machine idle time.
 *
 * Why grow only while creates are held back: a share or pause that no create is waiting for says
 * nothing about whether callbacks could bear more (RFC 7661 makes the same point for TCP). Grown
 * anyway, the limit stood at its full size whenever creates paused, and the next stream of creates went
 * in at once, to be followed by a flood of callbacks that waited 300–700 ms.
 *
 * Why the quiet time is long (30 s): callbacks follow creates by however long Kling takes, so a lull of
 * a few seconds between callbacks does not mean that the next creates bring none.
 */
export interface CreatesBesideCallbacks {
  /** The creates' limit now. */
  limit(): number;
  /** Milliseconds to leave between the starts of two creates now (0: none). */
  pauseMs(): number;
  /** True while callbacks are coming in (the share applies rather than the full limit). */
  callbacksComing(): boolean;
  /** A create had to wait for the share or the pause: they are what holds creates back. */
  createHeldBack(): void;
  callbackStarted(): void;
  /** Returns true when the limit rose or the pause shrank (creates waiting may go sooner). */
  callbackFinished(elapsedMs: number): boolean;
}

export interface CreatesBesideCallbacksOptions {
  /** The limit with no callbacks about (API_MAX_CONCURRENT_CREATES). */
  max: number;
  /** How much longer than the fastest recent callback a callback may take before creates give way further (API_CALLBACK_TARGET_MS). */
  targetMs: number;
  /** The fastest callback is taken from the current and the previous window of this length. */
  baseWindowMs?: number;
  /** How often the share or the pause may change. */
  intervalMs?: number;
  /** After this long without a callback, creates have the full limit again. */
  quietAfterMs?: number;
  /** The first pause between creates, once the share is 1 and callbacks are still slow. */
  pauseStartMs?: number;
  /** The longest pause: creates always go at least this often. */
  pauseMaxMs?: number;
  /** How much faster (creates a second) creates may go after each interval in which callbacks kept to the target. */
  rateStepPerS?: number;
  now?: () => number;
}

export function createsBesideCallbacks({
  max,
  targetMs,
  intervalMs = 100,
  quietAfterMs = 30_000,
  pauseStartMs = 4,
  pauseMaxMs = 100,
  rateStepPerS = 10,
  baseWindowMs = 30_000,
  now = () => performance.now(),
}: CreatesBesideCallbacksOptions): CreatesBesideCallbacks {
  const start = Math.max(1, Math.floor(max / 2));
  let share = start;
  let pause = 0;
  let inFlight = 0;
  let lastSeen = Number.NEGATIVE_INFINITY;
  let intervalStarted = Number.NEGATIVE_INFINITY;
  let slowInInterval = false;
  let heldBackInInterval = false;

  let fastestNow = Number.POSITIVE_INFINITY;
  let fastestBefore = Number.POSITIVE_INFINITY;
  let baseWindowStarted = Number.NEGATIVE_INFINITY;

  const quiet = (at: number): boolean => inFlight === 0 && at - lastSeen >= quietAfterMs;
  /**
   * How much longer this callback took than the fastest of the current and the previous window of
   * callbacks (windows start with a callback, so after a lull the previous one is from before it).
   */
  const queueingMs = (at: number, elapsedMs: number): number => {
    if (at - baseWindowStarted >= baseWindowMs) {
      fastestBefore = fastestNow;
      fastestNow = Number.POSITIVE_INFINITY;
      baseWindowStarted = at;
    }
    fastestNow = Math.min(fastestNow, elapsedMs);
    return elapsedMs - Math.min(fastestNow, fastestBefore);
  };

  const giveWay = (): void => {
    if (share > 1) share = Math.max(1, Math.floor(share / 2));
    else pause = pause === 0 ? pauseStartMs : Math.min(pauseMaxMs, pause * 2);
  };
  const goFaster = (): void => {
    if (pause === 0) {
      share = Math.min(max, share + 1);
      return;
    }
    pause = 1_000 / (1_000 / pause + rateStepPerS);
    if (pause < pauseStartMs) pause = 0;
  };

  return {
    limit: () => (quiet(now()) ? max : share),
    pauseMs: () => (quiet(now()) ? 0 : pause),
    callbacksComing: () => !quiet(now()),
    createHeldBack() {
      heldBackInInterval = true;
    },
    callbackStarted() {
      const at = now();
      if (quiet(at)) {
        share = start;
        pause = 0;
        intervalStarted = at;
        slowInInterval = false;
        heldBackInInterval = false;
      }
      inFlight++;
      lastSeen = at;
    },
    callbackFinished(elapsedMs) {
      const at = now();
      inFlight--;
      lastSeen = at;
      if (queueingMs(at, elapsedMs) > targetMs) slowInInterval = true;
      if (at - intervalStarted < intervalMs) return false;
      const before = { share, pause };
      if (slowInInterval) giveWay();
      else if (heldBackInInterval) goFaster();
      intervalStarted = at;
      slowInInterval = false;
      heldBackInInterval = false;
      return share > before.share || pause < before.pause;
    },
  };
}
