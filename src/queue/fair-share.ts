import type { Redis } from 'ioredis';
import { incrementCounter } from './redis-counter';

/**
 * Round-robin between tenants on open-source BullMQ, by job priority. A submit job's priority is its
 * place in its own tenant's backlog at the time it is queued: the next task of every tenant has
 * priority 1, the one after it 2, and so on. BullMQ starts lower numbers first, so a tenant with one
 * task waits behind at most one task of each other tenant, however many thousands another has queued.
 *
 * The backlog is a Redis counter per tenant: +1 when a submit job is queued, -1 when a worker first
 * takes it. A counter left high by a lost job only costs that tenant a little precedence, and expires
 * after an idle hour.
 */

/** BullMQ's highest priority number. */
export const MAX_PRIORITY = 2 ** 21;
const IDLE_RESET_S = 3_600;

const toPriority = (place: number): number => Math.min(Math.max(place, 1), MAX_PRIORITY);

/** Decrements, never below zero. */
const RELEASE = `local n = tonumber(redis.call('GET', KEYS[1]) or '0') if n > 0 then return redis.call('DECR', KEYS[1]) end return 0`;

export interface FairShare {
  /** Priorities for newly queued submit jobs of these tenants (one counter update per tenant), in the order given. */
  admitMany(tenantIds: string[]): Promise<number[]>;
  /** A worker took one of the tenant's jobs for the first time. */
  release(tenantId: string): Promise<void>;
}

export function createFairShare(redis: Redis, keyPrefix: string): FairShare {
  const key = (tenantId: string) => `${keyPrefix}:fair-share:${tenantId}`;
  return {
    async admitMany(tenantIds) {
      const counts = new Map<string, number>();
      for (const tenantId of tenantIds) counts.set(tenantId, (counts.get(tenantId) ?? 0) + 1);
      // A tenant's n new jobs take the n places after its backlog, in the order they came.
      const next = new Map<string, number>();
      await Promise.all(
        [...counts].map(async ([tenantId, count]) => {
          const last = await incrementCounter(redis, key(tenantId), IDLE_RESET_S, count);
          next.set(tenantId, last - count + 1);
        }),
      );
      return tenantIds.map((tenantId) => {
        const place = next.get(tenantId) as number;
        next.set(tenantId, place + 1);
        return toPriority(place);
      });
    },
    async release(tenantId) {
      await redis.eval(RELEASE, 1, key(tenantId));
    },
  };
}
