/**
 * At most `limit` holders at once; the rest wait in arrival order. The limit may be a function, read at
 * every acquire and release: when it falls, holders finish and no one new starts until they are under
 * it; when it rises, call `wake()` to let waiters in up to the new limit.
 */
export function createSemaphore(limit: number | (() => number)) {
  const current = typeof limit === 'function' ? limit : () => limit;
  let active = 0;
  const waiting: (() => void)[] = [];
  const wake = (): void => {
    while (waiting.length > 0 && active < current()) {
      active++;
      waiting.shift()!();
    }
  };
  /** True when a holder arriving now would have to wait. */
  const wouldWait = (): boolean => active >= current() || waiting.length > 0;
  async function withPermit<T>(work: () => Promise<T>): Promise<T> {
    if (wouldWait()) await new Promise<void>((resolve) => waiting.push(resolve));
    else active++;
    try {
      return await work();
    } finally {
      active--;
      wake();
    }
  }
  return Object.assign(withPermit, { wake, wouldWait });
}
