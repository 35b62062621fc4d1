import { createBatcher } from '../../src/batcher';

/** Records how the batcher called its two functions. */
function recordingBatcher(options: { maxBatch?: number; maxInFlight?: number; lingerMs?: number; failMany?: boolean; badItem?: number } = {}) {
  const batches: number[][] = [];
  const singles: number[] = [];
  /** Every batch and single as it was sent (before its round trip), in order. */
  const sent: number[][] = [];
  let inFlight = 0;
  let mostInFlight = 0;
  const settle = async <T>(work: () => T): Promise<T> => {
    inFlight += 1;
    mostInFlight = Math.max(mostInFlight, inFlight);
    await new Promise((resolve) => setTimeout(resolve, 5));
    inFlight -= 1;
    return work();
  };
  const double = (item: number): number => {
    if (item === options.badItem) throw new Error(`item ${item} is bad`);
    return item * 2;
  };
  const batched = createBatcher<number, number>({
    many: (items) => {
      sent.push(items);
      return settle(() => {
        batches.push(items);
        if (options.failMany || items.includes(options.badItem as number)) throw new Error('the batch failed');
        return items.map(double);
      });
    },
    one: (item) => {
      sent.push([item]);
      return settle(() => {
        singles.push(item);
        return double(item);
      });
    },
    maxBatch: options.maxBatch ?? 100,
    maxInFlight: options.maxInFlight ?? 2,
    lingerMs: options.lingerMs,
  });
  return { batched, batches, singles, sent, mostInFlight: () => mostInFlight };
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('createBatcher (group commit)', () => {
  test('when one call arrives alone, then it goes through `one` and gets its own answer', async () => {
    const rig = recordingBatcher();

    await expect(rig.batched(21)).resolves.toBe(42);

    expect(rig.singles).toEqual([21]);
    expect(rig.batches).toEqual([]);
  });

  test('when calls arrive together, then they share one batch and each gets its own answer, in order', async () => {
    const rig = recordingBatcher();

    const answers = await Promise.all([1, 2, 3, 4, 5].map((item) => rig.batched(item)));

    expect(answers).toEqual([2, 4, 6, 8, 10]);
    expect(rig.batches).toEqual([[1, 2, 3, 4, 5]]);
    expect(rig.singles).toEqual([]);
  });

  test('when more calls arrive than a batch holds, then they are split at maxBatch', async () => {
    const rig = recordingBatcher({ maxBatch: 3 });

    const answers = await Promise.all([1, 2, 3, 4, 5, 6, 7].map((item) => rig.batched(item)));

    expect(answers).toEqual([2, 4, 6, 8, 10, 12, 14]);
    expect(rig.batches.flat().concat(rig.singles).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(Math.max(...rig.batches.map((batch) => batch.length))).toBe(3);
  });

  test('when calls keep arriving while batches are out, then no more than maxInFlight are out at once', async () => {
    const rig = recordingBatcher({ maxBatch: 2, maxInFlight: 2 });

    const answers = await Promise.all(Array.from({ length: 20 }, (_, index) => rig.batched(index)));

    expect(answers).toEqual(Array.from({ length: 20 }, (_, index) => index * 2));
    expect(rig.mostInFlight()).toBeLessThanOrEqual(2);
  });

  test('when a batch finishes while calls wait, then the next batch is sent before its callers go on', async () => {
    const rig = recordingBatcher({ maxInFlight: 1 });

    const first = rig.batched(1);
    await pause(1); // out, so the next two wait for it
    const rest = Promise.all([2, 3].map((item) => rig.batched(item)));
    // What had been sent when the first caller's own continuation ran.
    const sentBeforeFirstWentOn = await first.then(() => rig.sent.map((batch) => [...batch]));

    expect(sentBeforeFirstWentOn).toEqual([[1], [2, 3]]);
    await expect(rest).resolves.toEqual([4, 6]);
  });

  test('when a batch fails because of one item, then every item is tried alone and only that one fails', async () => {
    const rig = recordingBatcher({ badItem: 3 });

    const outcomes = await Promise.allSettled([1, 2, 3, 4].map((item) => rig.batched(item)));

    expect(outcomes.map((outcome) => (outcome.status === 'fulfilled' ? outcome.value : (outcome.reason as Error).message))).toEqual([
      2,
      4,
      'item 3 is bad',
      8,
    ]);
    expect(rig.batches).toEqual([[1, 2, 3, 4]]);
    expect([...rig.singles].sort()).toEqual([1, 2, 3, 4]);
  });

  test('when calls come close together with none out, then the next one waits lingerMs for company', async () => {
    const rig = recordingBatcher({ lingerMs: 200 });

    await rig.batched(1);
    await pause(1); // its batch is no longer out
    // Some 6 ms after the first (its round trip and the pause): close enough to wait; the third joins it.
    const second = rig.batched(2);
    await pause(20);
    const third = rig.batched(3);

    await expect(Promise.all([second, third])).resolves.toEqual([4, 6]);
    expect(rig.singles).toEqual([1]);
    expect(rig.batches).toEqual([[2, 3]]);
  });

  test('when a call comes after a quiet spell, then it goes alone at once instead of waiting', async () => {
    const rig = recordingBatcher({ lingerMs: 100 });

    await rig.batched(1);
    await pause(150);
    const second = rig.batched(2);
    // Sent on the next turn: it is out before this one arrives, which then waits for company of its own.
    await pause(20);
    const third = rig.batched(3);

    await expect(Promise.all([second, third])).resolves.toEqual([4, 6]);
    expect(rig.singles).toEqual([1, 2, 3]);
    expect(rig.batches).toEqual([]);
  });
});
