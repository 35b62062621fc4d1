import type { Redis } from 'ioredis';
import type { TaskRepository } from '../db/task-repository';
import { AppError } from '../errors';
import { incrementCounter } from '../queue/redis-counter';

/**
 * Per-tenant admission limits, so one tenant cannot fill the shared upstream allowance: tasks in flight
 * (not yet finished) and submits per minute. A refused submit stores and sends nothing and answers 429
 * with Retry-After. Zero means no limit.
 */
export interface TenantLimitOptions {
  maxInFlight: number;
  maxSubmitsPerMinute: number;
}

/** Until then a tenant at its in-flight limit is told to come back: tasks take about this long to move on. */
const IN_FLIGHT_RETRY_AFTER_S = 10;

/** A one-minute window's count is kept a little past its minute, then forgotten. */
const WINDOW_KEY_TTL_S = 120;

export function createTenantLimits(deps: { redis: Redis; keyPrefix: string; tasks: TaskRepository }, options: TenantLimitOptions) {
  return {
    /** Throws a 429 AppError when the tenant may not submit another task now. */
    async admit(tenantId: string, now = Date.now()): Promise<void> {
      if (options.maxSubmitsPerMinute > 0) {
        const minute = Math.floor(now / 60_000);
        const submits = await incrementCounter(deps.redis, `${deps.keyPrefix}:submits:${tenantId}:${minute}`, WINDOW_KEY_TTL_S);
        if (submits > options.maxSubmitsPerMinute) {
          const retryAfter = Math.max(1, Math.ceil(((minute + 1) * 60_000 - now) / 1000));
          throw new AppError('TENANT_RATE_LIMITED', `At most ${options.maxSubmitsPerMinute} submits per minute per tenant; retry in ${retryAfter} s`, {
            retry_after_s: retryAfter,
            limit: options.maxSubmitsPerMinute,
          });
        }
      }
      if (options.maxInFlight > 0) {
        const inFlight = await deps.tasks.countUnfinished(tenantId, options.maxInFlight);
        if (inFlight >= options.maxInFlight) {
          throw new AppError('TENANT_IN_FLIGHT_LIMIT', `At most ${options.maxInFlight} unfinished tasks per tenant; submit more as these finish`, {
            retry_after_s: IN_FLIGHT_RETRY_AFTER_S,
            limit: options.maxInFlight,
          });
        }
      }
    },
  };
}

export type TenantLimits = ReturnType<typeof createTenantLimits>;
