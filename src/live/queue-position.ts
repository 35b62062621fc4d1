import type { Redis } from 'ioredis';
import type { TaskRecord, TaskRepository } from '../db/task-repository';
import { incrementCounter } from '../queue/redis-counter';

/**
 * Where a queued task stands: how many tasks will be sent to Kling before it (its tenant's, and all),
 * and when its turn should come at the recent pace. An estimate: retries, cancels and new tenants move it.
 */
export interface QueuePosition {
  /** This tenant's queued tasks ahead of it. */
  tenant: number;
  /** All queued tasks ahead of it, with round-robin dispatch between tenants when FAIR_SHARE is on. */
  all: number;
  /** Tasks sent to Kling per second over the last few minutes (null: none lately). */
  per_second: number | null;
  estimated_start_at: string | null;
}

const WINDOW_MINUTES = 5;

/** Tasks accepted by Kling per minute, counted in Redis by the workers (one key per minute, kept 15 min). */
export function createThroughput(redis: Redis, keyPrefix: string) {
  const key = (minute: number) => `${keyPrefix}:submitted:${minute}`;
  return {
    /** A worker had a task accepted by Kling. Best-effort: a lost count only skews an estimate. */
    async record(now = Date.now()): Promise<void> {
      const minute = Math.floor(now / 60_000);
      await incrementCounter(redis, key(minute), 900).catch(() => undefined);
    },
    /** Over the last WINDOW_MINUTES (the current minute as far as it has gone). */
    async perSecond(now = Date.now()): Promise<number> {
      const minute = Math.floor(now / 60_000);
      const counts = await redis.mget(Array.from({ length: WINDOW_MINUTES }, (_, i) => key(minute - i)));
      const total = counts.reduce((sum, value) => sum + Number(value ?? 0), 0);
      const seconds = (WINDOW_MINUTES - 1) * 60 + (now - minute * 60_000) / 1000;
      return total / seconds;
    },
  };
}

export type Throughput = ReturnType<typeof createThroughput>;

export async function queuePosition(deps: { tasks: TaskRepository; throughput: Throughput; fairShare: boolean }, task: TaskRecord, now = Date.now()): Promise<QueuePosition> {
  const [backlog, rate] = await Promise.all([deps.tasks.queuedBacklog(task.id), deps.throughput.perSecond(now)]);
  const own = backlog.find((row) => row.tenantId === task.tenantId)?.before ?? 0;
  // Round-robin: every other tenant's first own+1 tasks go before this one; first come, first served: those created before it.
  const all = backlog.reduce((sum, row) => sum + (row.tenantId === task.tenantId ? own : deps.fairShare ? Math.min(row.queued, own + 1) : row.before), 0);
  return {
    tenant: own,
    all,
    per_second: rate > 0 ? Number(rate.toFixed(3)) : null,
    estimated_start_at: rate > 0 ? new Date(now + (all / rate) * 1000).toISOString() : null,
  };
}
