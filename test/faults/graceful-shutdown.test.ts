import { Client } from 'pg';
import { validImageTask } from '../helpers/factories';
import { startFakeKling, type FakeKling } from '../helpers/fake-kling';
import { waitUntil } from '../helpers/fault-utils';
import { assertBuilt, createTenantWithCli, serviceEnv, ServiceProcesses } from '../helpers/service-processes';
import { createTestDatabase, uniqueQueuePrefix, type TestDatabase } from '../helpers/test-database';

/**
 * SIGTERM drains: the worker stops taking jobs, lets the creates already on the wire finish and be
 * recorded, and exits 0. Real processes (built dist/), the machine's Postgres and Redis, the fake Kling.
 */

const KLING_KEY = 'drain-kling-key';
const TASKS = 6;

jest.setTimeout(90_000);

let db: TestDatabase | undefined;
let fake: FakeKling | undefined;
let pg: Client | undefined;
const procs = new ServiceProcesses();

beforeAll(async () => {
  assertBuilt();
  [db, fake] = await Promise.all([
    createTestDatabase(),
    // Each create is held 1.5 s, so SIGTERM arrives while requests are on the wire.
    startFakeKling({ expectedBearer: KLING_KEY, createDelayMs: 1_500 }),
  ]);
  pg = new Client({ connectionString: db.url });
  await pg.connect();
});

afterAll(async () => {
  await procs.killAll();
  await fake?.stop();
  await pg?.end().catch(() => undefined);
  await db?.drop();
});

test('when the worker gets SIGTERM with creates in flight, then those finish and are recorded, it exits 0, and the rest wait for the next worker', async () => {
  const env = serviceEnv({
    databaseUrl: db!.url,
    redisUrl: 'redis://127.0.0.1:6379',
    queuePrefix: uniqueQueuePrefix(),
    klingBaseUrl: fake!.baseUrl,
    klingApiKey: KLING_KEY,
    extra: { KLING_CONCURRENCY: '2', KLING_POLL_INTERVAL_MS: '60000' },
  });
  const api = await procs.spawn('api', env);
  const { auth } = await createTenantWithCli(db!.url, `drain-${process.pid}`);
  const taskIds: string[] = [];
  for (let i = 0; i < TASKS; i++) {
    const response = await fetch(`${api.url}/v1/tasks`, { method: 'POST', headers: { authorization: auth, 'content-type': 'application/json' }, body: JSON.stringify(validImageTask()) });
    taskIds.push(((await response.json()) as { task_id: string }).task_id);
  }
  const worker = await procs.spawn('worker', { ...env, PUBLIC_BASE_URL: api.url });
  await waitUntil(() => fake!.createsInFlight === 2, 'two creates on the wire', { timeoutMs: 20_000, intervalMs: 5, context: () => procs.describe() });
  const onTheWire = fake!.creates().map((request) => request.body.external_task_id as string);

  const exit = await worker.stop(20_000);

  expect(exit).toEqual({ code: 0, signal: null });
  const rows = await pg!.query<{ id: string; status: string }>('SELECT id, status FROM tasks WHERE id = ANY($1)', [taskIds]);
  const statusOf = Object.fromEntries(rows.rows.map((row) => [row.id, row.status]));
  // The two requests Kling was answering when the signal came were waited for and recorded...
  for (const id of onTheWire) expect(statusOf[id]).not.toBe('queued');
  // ...and nothing new was started after it.
  expect(fake!.creates()).toHaveLength(onTheWire.length);
  expect(Object.values(statusOf).filter((status) => status === 'queued')).toHaveLength(TASKS - onTheWire.length);

  await worker.start();
  await waitUntil(
    async () => (await pg!.query("SELECT count(*)::int AS n FROM tasks WHERE id = ANY($1) AND status = 'succeed'", [taskIds])).rows[0].n === TASKS,
    'every task to succeed after the restart',
    { timeoutMs: 40_000, context: () => procs.describe() },
  );
  expect(fake!.creates()).toHaveLength(TASKS);
});
