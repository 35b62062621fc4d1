import type { Redis } from 'ioredis';

/** Adds `by` (default 1), (re)sets the key's expiry and returns the new value, in one round trip. */
const INCREMENT = `local n = redis.call('INCRBY', KEYS[1], ARGV[2]) redis.call('EXPIRE', KEYS[1], ARGV[1]) return n`;

/**
 * A shared counter in Redis that forgets itself `ttlSeconds` after its last increment: fair-share
 * backlogs, per-minute submit counts, the workers' per-minute pace.
 */
export async function incrementCounter(redis: Redis, key: string, ttlSeconds: number, by = 1): Promise<number> {
  return Number(await redis.eval(INCREMENT, 1, key, ttlSeconds, by));
}
