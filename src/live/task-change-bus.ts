import type { Redis } from 'ioredis';
import type { Logger } from '../logger';
import type { RedisSubscriber } from './redis-subscriber';

/**
 * "Task X changed": one Redis pub/sub channel shared by every API and worker process, so a status change
 * committed anywhere wakes the streams and waiting requests held by any API process. A message carries
 * the task id and the task as the committing process saw it right after the commit (the JSON clients
 * get), so a stream can pass on every change in order however fast they come. Postgres stays the source
 * of truth: announcements are best-effort, and a listener that must not miss a change also re-reads the
 * task on a timer of its own.
 */
export interface TaskChange {
  taskId: string;
  /** The task view (as GET shows it) right after the change. */
  view: unknown;
}

export interface TaskChangeBus {
  /** Announces a committed change (never throws: a lost announcement only delays a listener). */
  publish(change: TaskChange): Promise<void>;
  /** Calls `listener` on every announced change of the task until the returned function is called. */
  subscribe(taskId: string, listener: (change: TaskChange) => void): () => void;
}

export function createRedisTaskChangeBus(redis: Redis, subscriber: RedisSubscriber, channel: string, logger: Logger): TaskChangeBus {
  const listeners = new Map<string, Set<(change: TaskChange) => void>>();
  let listening = false;

  const deliver = (message: string) => {
    let change: TaskChange;
    try {
      change = JSON.parse(message) as TaskChange;
    } catch {
      return;
    }
    for (const listener of listeners.get(change.taskId) ?? []) listener(change);
  };

  return {
    async publish(change) {
      if (redis.status !== 'ready') return;
      await redis.publish(channel, JSON.stringify(change)).then(
        () => undefined,
        (error: Error) => logger.debug({ err: error, taskId: change.taskId }, 'task change not announced'),
      );
    },
    subscribe(taskId, listener) {
      if (!listening) {
        listening = true;
        subscriber.listen(channel, deliver);
      }
      let set = listeners.get(taskId);
      if (!set) listeners.set(taskId, (set = new Set()));
      set.add(listener);
      return () => {
        set.delete(listener);
        if (set.size === 0) listeners.delete(taskId);
      };
    },
  };
}
