import { UpstreamError } from '../src/upstream/upstream-error';

/** No single wait longer than this, whatever Kling's Retry-After says. */
export const MAX_RETRY_DELAY_MS = 10 * 60_000;

/**
 * Delay before retry number `attempt` (1 = first retry): Kling's Retry-After when it sent one,
 * otherwise exponential with full jitter so many tasks failing together do not retry in lockstep.
 */
export function retryDelayMs(attempt: number, baseDelayMs: number, error: unknown, random = Math.random): number {
  const retryAfter = error instanceof UpstreamError ? error.details.retryAfterMs : undefined;
  if (retryAfter !== undefined) return Math.min(retryAfter, MAX_RETRY_DELAY_MS);
  const ceiling = Math.min(baseDelayMs * 2 ** (attempt - 1), MAX_RETRY_DELAY_MS);
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** Carries the delay the processor chose (and recorded) to BullMQ's backoff strategy. */
export class RetryLater extends Error {
  constructor(
    readonly delayMs: number,
    override readonly cause: unknown,
  ) {
    super((cause as Error)?.message ?? 'retry later');
    this.name = 'RetryLater';
  }
}
