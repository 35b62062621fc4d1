import { fullCollection, releaseMemoryWhenIdle, type MemoryRelease } from '../../src/idle-memory';

/** Keeps the event loop busy (synchronously) for `ms`. */
function busyFor(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) Math.sqrt(Math.random());
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `releases` has `count` entries (or gives up after `ms`). */
async function releasesReach(releases: MemoryRelease[], count: number, ms = 5_000): Promise<void> {
  const until = Date.now() + ms;
  while (releases.length < count && Date.now() < until) await sleep(10);
}

/**
 * Short samples; only a sample at least half busy counts as busy, and one under a fifth busy as quiet: a
 * jest worker also runs other test files' leftovers (and collects their garbage), and only this file's
 * deliberate busy spells and pauses may decide.
 */
const FAST = { sampleMs: 50, busyUtilization: 0.5, idleUtilization: 0.2 };

describe('releaseMemoryWhenIdle', () => {
  let stop: (() => void) | undefined;
  // A clean heap first: a jest worker carries earlier test files' garbage, and a long collection of it
  // in the middle of a test would look like a busy spell.
  beforeEach(() => fullCollection()());
  afterEach(() => stop?.());

  test('when a busy spell is followed by quiet, then one full collection runs and frees what the spell left', async () => {
    const releases: MemoryRelease[] = [];
    ({ stop } = releaseMemoryWhenIdle({ ...FAST, idleMs: 100, onRelease: (release) => releases.push(release) }));
    // Garbage from the "burst": large arrays live in V8's large-object space, which only a full collection frees.
    let burst: number[][] | undefined = Array.from({ length: 8 }, () => new Array<number>(1_000_000).fill(1.5));
    await sleep(30);
    busyFor(100);
    burst = undefined;
    expect(burst).toBeUndefined();

    await releasesReach(releases, 1);
    await sleep(300);

    expect(releases).toHaveLength(1);
    const [release] = releases;
    expect(release!.heapUsedAfterMb).toBeLessThan(release!.heapUsedBeforeMb);
    expect(release!.tookMs).toBeGreaterThanOrEqual(0);
  });

  test('when the process stays quiet, then nothing runs until the next busy spell, and then once more', async () => {
    const releases: MemoryRelease[] = [];
    ({ stop } = releaseMemoryWhenIdle({ ...FAST, idleMs: 60, onRelease: (release) => releases.push(release) }));

    await sleep(250);
    expect(releases).toHaveLength(0);

    busyFor(100);
    await releasesReach(releases, 1);
    await sleep(250);
    expect(releases).toHaveLength(1);

    busyFor(100);
    await releasesReach(releases, 2);
    expect(releases).toHaveLength(2);
  });
});
