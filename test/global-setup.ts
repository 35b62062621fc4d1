import { Redis } from 'ioredis';
import { Client } from 'pg';
import { ADMIN_DATABASE_URL } from './helpers/test-database';

/** Fails fast, with the fix, when the machine's Postgres or Redis is not running. */
export default async function globalSetup(): Promise<void> {
  const pg = new Client({ connectionString: ADMIN_DATABASE_URL, connectionTimeoutMillis: 3_000 });
  try {
    await pg.connect();
    await pg.query('SELECT 1');
  } catch (error) {
    throw new Error(`Tests need Postgres at ${ADMIN_DATABASE_URL} (${(error as Error).message}); .ci/run starts it.`);
  } finally {
    await pg.end().catch(() => undefined);
  }
  const redisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 3_000, retryStrategy: () => null });
  try {
    await redis.connect();
    await redis.ping();
  } catch (error) {
    throw new Error(`Tests need Redis at ${redisUrl} (${(error as Error).message}); .ci/run starts it.`);
  } finally {
    redis.disconnect();
  }
}
