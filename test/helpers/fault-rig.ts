import { Client } from 'pg';
import { startFakeKling, type FakeKling, type FakeKlingOptions } from './fake-kling';
import { startPrivateRedis, type PrivateRedis } from './private-redis';
import { assertBuilt, ServiceProcesses } from './service-processes';
import { createTestDatabase, type TestDatabase } from './test-database';

/** What a fault test's service processes run against; every field is set once `beforeAll` has run. */
export interface FaultRig {
  db: TestDatabase;
  fake: FakeKling;
  /** A client on the test database, to read task rows straight from Postgres. */
  pg: Client;
  /** Only with `privateRedis`: a redis-server of the test's own, to stop and start. */
  redis: PrivateRedis;
  procs: ServiceProcesses;
}

/**
 * Registers the `beforeAll`/`afterAll` every process-level fault test needs: its own database, a fake
 * Kling, optionally a private Redis, a Postgres client, and the service processes it spawns (killed first
 * on the way out).
 */
export function useFaultRig(options: { fake: FakeKlingOptions; privateRedis?: boolean }): FaultRig {
  const rig = { procs: new ServiceProcesses() } as FaultRig;
  beforeAll(async () => {
    assertBuilt();
    const [db, fake, redis] = await Promise.all([createTestDatabase(), startFakeKling(options.fake), options.privateRedis ? startPrivateRedis() : undefined]);
    Object.assign(rig, { db, fake, ...(redis ? { redis } : {}) });
    rig.pg = new Client({ connectionString: db.url });
    await rig.pg.connect();
  });
  afterAll(async () => {
    await rig.procs.killAll();
    await rig.fake?.stop();
    await rig.pg?.end().catch(() => undefined);
    await rig.db?.drop();
    await rig.redis?.destroy();
  });
  return rig;
}
