import type { Redis } from 'ioredis';
import type { Logger } from '../logger';

/**
 * One pub/sub connection per process for everything that listens (task changes, API key revocations):
 * opened with the first listener, so processes that never listen open none. ioredis subscribes again
 * by itself after a reconnect; `onReconnect` handlers hear of it, since messages may have been missed.
 */
export function createRedisSubscriber(redis: Redis, logger: Logger) {
  const handlers = new Map<string, (message: string) => void>();
  const reconnectHandlers: (() => void)[] = [];
  let connection: Redis | undefined;

  const open = (): Redis => {
    if (connection) return connection;
    const opened = redis.duplicate();
    opened.on('error', (error) => logger.debug({ err: error }, 'pub/sub connection error'));
    opened.on('message', (channel: string, message: string) => handlers.get(channel)?.(message));
    opened.on('ready', () => reconnectHandlers.forEach((handler) => handler()));
    connection = opened;
    return opened;
  };

  return {
    /** Delivers each message of `channel` to `handler` (one handler per channel). */
    listen(channel: string, handler: (message: string) => void, options: { onReconnect?: () => void } = {}): void {
      handlers.set(channel, handler);
      if (options.onReconnect) reconnectHandlers.push(options.onReconnect);
      open()
        .subscribe(channel)
        .catch((error: Error) => logger.warn({ err: error, channel }, 'could not subscribe'));
    },
    async close(): Promise<void> {
      handlers.clear();
      const closing = connection;
      connection = undefined;
      if (!closing) return;
      if (closing.status === 'ready') await closing.quit().catch(() => undefined);
      else closing.disconnect();
    },
  };
}

export type RedisSubscriber = ReturnType<typeof createRedisSubscriber>;
