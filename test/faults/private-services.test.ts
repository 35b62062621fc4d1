import { Client } from 'pg';
import { Redis } from 'ioredis';
import { startPrivatePostgres, type PrivatePostgres } from '../helpers/private-postgres';
import { redisPing, startPrivateRedis, type PrivateRedis } from '../helpers/private-redis';

/**
 * The throwaway Redis and Postgres the fault tests break: each starts on its own free port, stops,
 * and comes back on the same port, without the machine's shared instances being involved.
 */

jest.setTimeout(60_000);

async function pgQuery(url: string, sql: string): Promise<unknown[]> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}

describe('a private redis-server', () => {
  let redis: PrivateRedis;

  beforeAll(async () => {
    redis = await startPrivateRedis();
  });
  afterAll(() => redis?.destroy());

  test('when started, then it answers PING on its own loopback port, not 6379', async () => {
    expect(redis.port).not.toBe(6379);
    expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`);
    expect(await redisPing(redis.port)).toBe(true);
  });

  test('when stopped or killed and started again, then it answers on the same port with its data gone', async () => {
    const client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    try {
      await client.set('k', 'v');
      await redis.stop();
      expect(redis.running()).toBe(false);
      expect(await redisPing(redis.port)).toBe(false);

      await redis.start();
      expect(await redisPing(redis.port)).toBe(true);
      await redis.kill();
      expect(await redisPing(redis.port)).toBe(false);
      await redis.start();

      expect(await client.get('k')).toBeNull();
    } finally {
      client.disconnect();
    }
  });
});

describe('a private PostgreSQL cluster', () => {
  let pg: PrivatePostgres;

  beforeAll(async () => {
    pg = await startPrivatePostgres();
    console.log(`private postgres: initdb ${pg.timings.initdbMs} ms, start ${pg.timings.startMs} ms (port ${pg.port})`);
  });
  afterAll(() => pg?.destroy());

  test('when started, then it accepts connections on its own port, with fsync off', async () => {
    expect(pg.port).not.toBe(5432);
    expect(await pgQuery(pg.adminUrl, 'SHOW fsync')).toEqual([{ fsync: 'off' }]);
  });

  test('when stopped (fast, then immediate) and started again, then it refuses connections meanwhile and keeps its data', async () => {
    await pgQuery(pg.adminUrl, 'CREATE DATABASE kept');
    await pgQuery(pg.urlFor('kept'), 'CREATE TABLE t (x int); INSERT INTO t VALUES (42)');

    await pg.stop();
    await expect(pgQuery(pg.adminUrl, 'SELECT 1')).rejects.toThrow(/ECONNREFUSED/);
    await pg.start();
    await pg.stop({ mode: 'immediate' });
    await expect(pgQuery(pg.adminUrl, 'SELECT 1')).rejects.toThrow(/ECONNREFUSED/);
    const restartedAt = Date.now();
    await pg.start();
    console.log(`private postgres: restart after an immediate stop ${Date.now() - restartedAt} ms`);

    expect(await pgQuery(pg.urlFor('kept'), 'SELECT x FROM t')).toEqual([{ x: 42 }]);
  });
});
