import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { z } from 'zod';

export const SUBMIT_QUEUE = 'submit-task';
export const POLL_QUEUE = 'poll-task';
export const MAINTENANCE_QUEUE = 'maintenance';
export const NOTIFY_QUEUE = 'notify-client';

/** Jobs carry only the task id: Postgres is the source of truth, and a job re-reads the row. */
export const taskJobSchema = z.object({ taskId: z.string().min(1), tenantId: z.string().min(1).optional() });
export type TaskJob = z.infer<typeof taskJobSchema>;

/** One notify job per task at a time (see enqueueNotify). */
export const notifyJobId = (taskId: string): string => `notify_${taskId}`;

/** BullMQ needs `maxRetriesPerRequest: null` on every connection it uses. */
export function createRedisConnection(redisUrl: string): Redis {
  return new Redis(redisUrl, { maxRetriesPerRequest: null, lazyConnect: false });
}

/** The name of the custom backoff the workers register (see workers/retry-backoff.ts). */
export const UPSTREAM_BACKOFF = 'upstream';

export interface TaskQueues {
  submit: Queue<TaskJob>;
  poll: Queue<TaskJob>;
  maintenance: Queue;
  notify: Queue<TaskJob>;
  close(): Promise<void>;
}

/**
 * BullMQ's key prefix. Wrapped in braces (a Redis Cluster hash tag) so all of a queue's keys land on one
 * cluster slot, which BullMQ's multi-key scripts need; a prefix that already has a tag is kept as given.
 */
export const bullPrefix = (queuePrefix: string): string => (queuePrefix.includes('{') ? queuePrefix : `{${queuePrefix}}`);

export function createTaskQueues(connection: Redis, queuePrefix: string): TaskQueues {
  const prefix = bullPrefix(queuePrefix);
  const submit = new Queue<TaskJob>(SUBMIT_QUEUE, { connection, prefix });
  const poll = new Queue<TaskJob>(POLL_QUEUE, { connection, prefix });
  const maintenance = new Queue(MAINTENANCE_QUEUE, { connection, prefix });
  const notify = new Queue<TaskJob>(NOTIFY_QUEUE, { connection, prefix });
  return {
    submit,
    poll,
    maintenance,
    notify,
    async close() {
      await Promise.all([submit.close(), poll.close(), maintenance.close(), notify.close()]);
    },
  };
}
