import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import type { MemoryRelease } from '../../src/idle-memory';
import { assertBuilt } from '../helpers/service-processes';

const BUILT_MODULE = path.join(__dirname, '..', '..', 'dist', 'src', 'idle-memory.js');

/**
 * Each scenario runs in a fresh node process with the built module. In a jest worker it could not: the
 * worker carries earlier test files' heap (CI saw 350 MB) and leftovers, whose collections and timers
 * make samples busy that the scenario meant to be quiet, and the module rightly counts them.
 * Short samples; only a sample at least half busy counts as busy, and one under a fifth busy as quiet.
 */
const PRELUDE = `
const { releaseMemoryWhenIdle } = require(process.argv[1]);
const FAST = { sampleMs: 50, busyUtilization: 0.5, idleUtilization: 0.2 };
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
// Keeps the event loop busy (synchronously) for ms.
const busyFor = (ms) => { const until = Date.now() + ms; while (Date.now() < until) Math.sqrt(Math.random()); };
const releases = [];
const counts = {};
// Waits until condition() holds (or gives up after ms).
const until = async (condition, ms = 5000) => { const end = Date.now() + ms; while (!condition() && Date.now() < end) await sleep(10); };
`;

interface ScenarioResult {
  releases: MemoryRelease[];
  /** Number of releases at the moments the scenario named. */
  counts: Record<string, number>;
}

async function runScenario(body: string): Promise<ScenarioResult> {
  const script = `${PRELUDE}
(async () => {
  ${body}
  process.stdout.write(JSON.stringify({ releases, counts }));
  process.exit(0);
})().catch((error) => { console.error(error); process.exit(1); });`;
  const { stdout } = await promisify(execFile)(process.execPath, ['-e', script, BUILT_MODULE], { timeout: 20_000 });
  return JSON.parse(stdout) as ScenarioResult;
}

describe('releaseMemoryWhenIdle', () => {
  beforeAll(() => assertBuilt());

  test('when a busy spell leaves garbage behind, then once quiet a full collection frees it, and a second one follows after as long again', async () => {
    const { releases, counts } = await runScenario(`
      const { stop, collectionsDue } = releaseMemoryWhenIdle({ ...FAST, idleMs: 100, onRelease: (release) => releases.push(release) });
      // Garbage from the "burst": large arrays live in V8's large-object space, which only a full collection
      // frees. 32 MB stays under V8's own old-generation limit: with 64 MB, V8 started a full collection of
      // its own once the busy spell ended and freed the arrays before the idle one ran.
      let burst = Array.from({ length: 4 }, () => new Array(1_000_000).fill(1.5));
      await sleep(30);
      busyFor(100);
      burst = undefined;
      await sleep(80);
      counts.dueAfterSpell = collectionsDue();
      await until(() => collectionsDue() === 0);
      counts.dueAtEnd = collectionsDue();
      await sleep(300);
      stop();
    `);

    expect(counts).toEqual({ dueAfterSpell: 2, dueAtEnd: 0 });
    expect(releases).toHaveLength(2);
    const [first, second] = releases;
    expect(first!.tookMs).toBeGreaterThanOrEqual(0);
    // The first one freed the burst's arrays (32 MB): the second finds the heap as the first left it.
    expect(first!.heapUsedBeforeMb - first!.heapUsedAfterMb).toBeGreaterThan(25);
    expect(second!.heapUsedBeforeMb).toBeLessThan(first!.heapUsedBeforeMb - 25);
  });

  test('when the process stays quiet, then nothing runs; after a spell that leaves garbage two collections run, after one that leaves none, none does', async () => {
    const { releases, counts } = await runScenario(`
      const { stop, collectionsDue } = releaseMemoryWhenIdle({ ...FAST, idleMs: 60, minGrowthMb: 8, onRelease: (release) => releases.push(release) });
      await sleep(250);
      counts.quietFromTheStart = releases.length;
      counts.dueQuietFromTheStart = collectionsDue();
      // The first spell's collections always run: until then what a collection leaves is unknown.
      busyFor(100);
      await until(() => collectionsDue() === 2, 1000);
      await until(() => collectionsDue() === 0);
      counts.afterFirstSpell = releases.length;
      // The sample right after a collection is not counted (its clean-up is no busy spell): let it pass.
      await sleep(120);
      let garbage = Array.from({ length: 4 }, () => new Array(1_000_000).fill(1.5));
      busyFor(100);
      garbage = undefined;
      await sleep(80);
      counts.dueAfterGarbageSpell = collectionsDue();
      await until(() => collectionsDue() === 0);
      counts.afterGarbageSpell = releases.length;
      await sleep(120);
      busyFor(100);
      await sleep(80);
      counts.dueAfterCleanSpell = collectionsDue();
      await until(() => collectionsDue() === 0);
      counts.dueAtEnd = collectionsDue();
      counts.afterCleanSpell = releases.length;
      stop();
    `);

    expect(counts).toEqual({
      quietFromTheStart: 0,
      dueQuietFromTheStart: 0,
      afterFirstSpell: 2,
      dueAfterGarbageSpell: 2,
      afterGarbageSpell: 4,
      dueAfterCleanSpell: 2,
      dueAtEnd: 0,
      afterCleanSpell: 4,
    });
    expect(releases[2]!.heapUsedBeforeMb - releases[2]!.heapUsedAfterMb).toBeGreaterThan(25);
  });
});
