import type { Redis } from 'ioredis';
import type { Logger } from '../logger';

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
  /** Local listeners (for the benchmark and /metrics). */
  listenerCount(): number;
  close(): Promise<void>;
}

export function createRedisTaskChangeBus(redis: Redis, channel: string, logger: Logger): TaskChangeBus {
  const listeners = new Map<string, Set<(change: TaskChange) => void>>();
  let subscriber: Redis | undefined;
  let count = 0;

  /** One subscriber connection per process, opened with the first listener. */
  const ensureSubscribed = () => {
    if (subscriber) return;
    subscriber = redis.duplicate();
    subscriber.on('error', (error) => logger.debug({ err: error }, 'task change subscriber error'));
    subscriber.on('message', (_channel: string, message: string) => {
      let change: TaskChange;
      try {
        change = JSON.parse(message) as TaskChange;
      } catch {
        return;
      }
      for (const listener of listeners.get(change.taskId) ?? []) listener(change);
    });
    // ioredis re-subscribes by itself after a reconnect.
    subscriber.subscribe(channel).catch((error: Error) => logger.warn({ err: error }, 'could not subscribe to task changes'));
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
      ensureSubscribed();
      let set = listeners.get(taskId);
      if (!set) listeners.set(taskId, (set = new Set()));
      set.add(listener);
      count++;
      return () => {
        if (!set.delete(listener)) return;
        count--;
        if (set.size === 0) listeners.delete(taskId);
      };
    },
    listenerCount: () => count,
    async close() {
      listeners.clear();
      if (!subscriber) return;
      const closing = subscriber;
      subscriber = undefined;
      if (closing.status === 'ready') await closing.quit().catch(() => undefined);
      else closing.disconnect();
    },
  };
}
