import { performance } from 'node:perf_hooks';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Logger } from './logger';

/** A sample this busy (event-loop utilization) starts a busy spell; one this quiet counts as idle. */
const BUSY_UTILIZATION = 0.1;
const IDLE_UTILIZATION = 0.02;
/**
 * A quiet spell's collections run only if memory (outside the young generation, or as committed) has
 * grown at least this much (MB) since the last collection. Without this, a worker with a backlog ran a
 * full collection (33–55 ms) every ~10 s, in step with its maintenance sweep, to free 1–3.3 MB each time
 * (`npm run bench`, debug log).
 */
const MIN_GROWTH_MB = 8;

export interface MemoryRelease {
  heapUsedBeforeMb: number;
  heapUsedAfterMb: number;
  /** V8's heap as committed (in use or not): what a young generation grown by a burst shows in. */
  heapTotalBeforeMb: number;
  heapTotalAfterMb: number;
  rssBeforeMb: number;
  rssAfterMb: number;
  tookMs: number;
}

export interface IdleMemoryOptions {
  /** Quiet time after a busy spell before the collection runs. */
  idleMs: number;
  /** How often event-loop utilization is sampled. */
  sampleMs?: number;
  /** Event-loop utilization of a sample that counts as busy (default 0.1). */
  busyUtilization?: number;
  /** Event-loop utilization under which a sample counts as idle (default 0.02). */
  idleUtilization?: number;
  /** Growth (MB) since the last collection that makes a quiet spell's collections worth running (default 8). */
  minGrowthMb?: number;
  logger?: Logger;
  /** Told about each release (tests, metrics). */
  onRelease?: (release: MemoryRelease) => void;
}

/** V8's full collection: `global.gc` when node runs with --expose-gc, else the same function from a fresh context. */
export function fullCollection(): () => void {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (typeof exposed === 'function') return exposed;
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

const mb = (bytes: number): number => Math.round((bytes / 2 ** 20) * 10) / 10;

export interface IdleMemoryRelease {
  stop(): void;
  /** Collections still due in the current quiet spell: 2 from a busy spell on, 0 once both have run or been skipped. */
  collectionsDue(): number;
}

/** Memory in use (V8's heap but its young generation, and the buffers outside it) and V8's heap as committed, MB. */
interface Footprint {
  usedMb: number;
  committedMb: number;
}

const YOUNG_SPACES = new Set(['new_space', 'new_large_object_space']);

/**
 * Bytes in use in V8's young generation. What is there is freed by the next young collection without a
 * full one; counted as growth, a few MB of it made a quiet process run full collections for nothing (seen
 * when code runs unoptimised on a loaded machine: the same busy loop then allocates where it otherwise
 * does not).
 */
const youngInUse = (): number =>
  getHeapSpaceStatistics().reduce((sum, space) => (YOUNG_SPACES.has(space.space_name) ? sum + space.space_used_size : sum), 0);

const footprintOf = (usage: NodeJS.MemoryUsage): Footprint => ({
  usedMb: mb(usage.heapUsed - youngInUse() + usage.external),
  committedMb: mb(usage.heapTotal),
});

/**
 * Gives a burst's memory back once the process has gone quiet. V8 collects its old generation only when
 * allocation pushes it to, so after a burst an idle API or worker keeps the burst's garbage (and the RSS
 * it took) until the next burst: `npm run bench` saw 74–137 MB of V8 heap "in use" after 10–30 s of
 * quiet where ~30 MB was live. Node gives V8 no idle time, so this does: after a busy spell, once the event
 * loop has been idle for `idleMs`, a full collection runs (tens of ms, with nothing waiting), and once it
 * has been idle for `idleMs` more, a second one. Then nothing until the next busy spell. Both are skipped
 * unless memory has grown `minGrowthMb` since the last collection: a spell that left little behind costs
 * no collection. Stops with `stop()`.
 *
 * Why two: V8 shrinks its young generation (up to 32 MB of RSS) in a full collection only when the
 * allocation rate it measured since the collection before is low, over its last 5 s. The first
 * collection's measurement still covers the end of the burst, so whether it shrinks depends on where the
 * burst's last young collection fell (`npm run bench` saw the API's RSS stay at its peak after 2 of 3
 * bursts); the second one's covers quiet alone. In a standalone script, the young generation shrank after
 * 1 of 4 single collections and after 4 of 4 pairs 6 s apart.
 */
export function releaseMemoryWhenIdle(options: IdleMemoryOptions): IdleMemoryRelease {
  const collect = fullCollection();
  const sampleMs = options.sampleMs ?? 1_000;
  const busyUtilization = options.busyUtilization ?? BUSY_UTILIZATION;
  const idleUtilization = options.idleUtilization ?? IDLE_UTILIZATION;
  const minGrowthMb = options.minGrowthMb ?? MIN_GROWTH_MB;
  /**
   * What the last collection left: in use, and committed (a young generation grown by a burst shows as
   * committed heap, not as heap in use). Unknown until the first collection, which therefore always runs.
   */
  let lastLeft: Footprint | undefined;
  const grownSinceLast = (now: Footprint): boolean =>
    !lastLeft || now.usedMb - lastLeft.usedMb >= minGrowthMb || now.committedMb - lastLeft.committedMb >= minGrowthMb;
  let previous = performance.eventLoopUtilization();
  /** Collections still to run in this quiet spell: two after a busy spell, then none. */
  let collectionsDue = 0;
  let quietSince: number | undefined;
  let afterCollection = false;
  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    const { utilization } = performance.eventLoopUtilization(now, previous);
    previous = now;
    if (afterCollection) {
      afterCollection = false;
      return;
    }
    if (utilization >= busyUtilization) {
      collectionsDue = 2;
      quietSince = undefined;
      return;
    }
    if (collectionsDue === 0 || utilization >= idleUtilization) {
      quietSince = undefined;
      return;
    }
    quietSince ??= performance.now();
    if (performance.now() - quietSince < options.idleMs) return;
    quietSince = undefined;
    const before = process.memoryUsage();
    if (collectionsDue === 2 && !grownSinceLast(footprintOf(before))) {
      // The second one only follows up a first that ran (see above): this spell is done with.
      collectionsDue = 0;
      return;
    }
    collectionsDue--;
    const startedAt = performance.now();
    collect();
    const after = process.memoryUsage();
    lastLeft = footprintOf(after);
    // Neither the collection nor V8's clean-up right after it (freeing pages) is a new busy spell.
    afterCollection = true;
    const release: MemoryRelease = {
      heapUsedBeforeMb: mb(before.heapUsed),
      heapUsedAfterMb: mb(after.heapUsed),
      heapTotalBeforeMb: mb(before.heapTotal),
      heapTotalAfterMb: mb(after.heapTotal),
      rssBeforeMb: mb(before.rss),
      rssAfterMb: mb(after.rss),
      tookMs: Math.round((performance.now() - startedAt) * 10) / 10,
    };
    options.logger?.debug(release, 'idle after a busy spell: memory released');
    options.onRelease?.(release);
  }, sampleMs);
  timer.unref();
  return { stop: () => clearInterval(timer), collectionsDue: () => collectionsDue };
}
