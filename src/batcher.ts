/**
 * Group commit: concurrent calls that arrive while earlier work is in flight are done together, as one
 * statement or one round trip, instead of one each. Under load every submit otherwise pays its own
 * Postgres commit (a WAL flush) and its own Redis round trip; batched, a burst of requests shares them,
 * and each caller still gets its own answer only once its own item is durable.
 *
 * Nothing waits for a batch to fill: the first call after an idle period is sent on the next turn of the
 * event loop, together with whatever else arrived in the same turn. Calls that arrive while
 * `maxInFlight` batches are out wait for one of them to finish and then go together, at once: before
 * the finished batch's callers are answered, so the next round trip overlaps their work instead of
 * following it. With `lingerMs`, a call that finds no batch out but came within `lingerMs` of the call
 * before it waits that long for company (see the option).
 */
export interface BatcherOptions<I, O> {
  /** The whole batch at once; one result per item, in order. */
  many(items: I[]): Promise<O[]>;
  /**
   * One item alone: for a batch of one, and for every item of a batch whose `many` failed, so that one
   * bad item (a conflicting id, say) fails alone and the others go through.
   */
  one(item: I): Promise<O>;
  /** Most items in one batch. */
  maxBatch: number;
  /** Most batches out at once. */
  maxInFlight: number;
  /**
   * When calls come at least this close together (ms) and none is out, the next one waits this long for
   * others to join it instead of going alone (default 0: never waits). At a steady moderate rate calls
   * otherwise find nothing out and each goes alone, paying a whole round trip of its own; a call after a
   * quiet spell never waits.
   */
  lingerMs?: number;
}

interface Waiting<I, O> {
  item: I;
  resolve(value: O): void;
  reject(error: unknown): void;
}

export type Batched<I, O> = (item: I) => Promise<O>;

export function createBatcher<I, O>(options: BatcherOptions<I, O>): Batched<I, O> {
  const waiting: Waiting<I, O>[] = [];
  let inFlight = 0;
  let scheduled = false;
  const lingerMs = options.lingerMs ?? 0;
  let lastCallAt = Number.NEGATIVE_INFINITY;

  /**
   * Does one batch and returns how to answer its callers, without answering them yet: startBatches frees
   * the batch's place and sends the next one first, so that round trip overlaps the callers'
   * continuations (for a create: its answer and log line).
   */
  async function send(batch: Waiting<I, O>[]): Promise<() => void> {
    if (batch.length === 1) {
      const [only] = batch as [Waiting<I, O>];
      return options.one(only.item).then(
        (value) => () => only.resolve(value),
        (error: unknown) => () => only.reject(error),
      );
    }
    let results: O[];
    try {
      results = await options.many(batch.map((entry) => entry.item));
      if (results.length !== batch.length) throw new Error(`a batch of ${batch.length} answered ${results.length} results`);
    } catch {
      // Each item alone, each caller answered as its own finishes: nothing is left to answer after.
      await Promise.all(batch.map((entry) => options.one(entry.item).then(entry.resolve, entry.reject)));
      return () => undefined;
    }
    return () => batch.forEach((entry, index) => entry.resolve(results[index] as O));
  }

  function startBatches(): void {
    scheduled = false;
    while (waiting.length > 0 && inFlight < options.maxInFlight) {
      const batch = waiting.splice(0, options.maxBatch);
      inFlight += 1;
      const free = (): void => {
        inFlight -= 1;
        // Calls that waited for this batch have waited enough: they go now, before its callers are answered.
        if (waiting.length > 0) startBatches();
      };
      void send(batch).then(
        (answerCallers) => {
          free();
          answerCallers();
        },
        (error: unknown) => {
          free();
          throw error;
        },
      );
    }
  }

  /** `linger`: the call that asks came close after the one before it (see `lingerMs`). */
  function schedule(linger = false): void {
    if (scheduled || waiting.length === 0 || inFlight >= options.maxInFlight) return;
    scheduled = true;
    if (linger && inFlight === 0) setTimeout(startBatches, lingerMs);
    // setImmediate, not a microtask: requests parsed in the same turn of the event loop join this batch.
    else setImmediate(startBatches);
  }

  return (item) =>
    new Promise<O>((resolve, reject) => {
      waiting.push({ item, resolve, reject });
      const now = lingerMs > 0 ? performance.now() : 0;
      const closeAfterLast = now - lastCallAt < lingerMs;
      lastCallAt = now;
      schedule(closeAfterLast);
    });
}
