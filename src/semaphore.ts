/** At most `limit` holders at once; the rest wait in arrival order. */
export function createSemaphore(limit: number) {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async function withPermit<T>(work: () => Promise<T>): Promise<T> {
    if (active >= limit) await new Promise<void>((resolve) => waiting.push(resolve));
    else active++;
    try {
      return await work();
    } finally {
      // Hand the permit straight to the next waiter, so `active` never dips and lets a newcomer jump the line.
      const next = waiting.shift();
      if (next) next();
      else active--;
    }
  };
}
