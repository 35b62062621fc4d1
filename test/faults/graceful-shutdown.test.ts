import { validImageTask } from '../helpers/factories';
import { useFaultRig } from '../helpers/fault-rig';
import { waitUntil } from '../helpers/fault-utils';
import { createTenantWithCli, serviceEnv } from '../helpers/service-processes';
import { uniqueQueuePrefix } from '../helpers/test-database';

/**
 * SIGTERM drains: the worker stops taking jobs, lets the creates already on the wire finish and be
 * recorded, and exits 0. Real processes (built dist/), the machine's Postgres and Redis, the fake Kling.
 */

const KLING_KEY = 'drain-kling-key';
const TASKS = 6;

jest.setTimeout(90_000);

// Each create is held 1.5 s, so SIGTERM arrives while requests are on the wire.
const rig = useFaultRig({ fake: { expectedBearer: KLING_KEY, createDelayMs: 1_500 } });

test('when the worker gets SIGTERM with creates in flight, then those finish and are recorded, it exits 0, and the rest wait for the next worker', async () => {
  const env = serviceEnv({
    databaseUrl: rig.db.url,
    redisUrl: 'redis://127.0.0.1:6379',
    queuePrefix: uniqueQueuePrefix(),
    klingBaseUrl: rig.fake.baseUrl,
    klingApiKey: KLING_KEY,
    extra: { KLING_CONCURRENCY: '2', KLING_POLL_INTERVAL_MS: '60000' },
  });
  const api = await rig.procs.spawn('api', env);
  const { auth } = await createTenantWithCli(rig.db.url, `drain-${process.pid}`);
  const taskIds: string[] = [];
  for (let i = 0; i < TASKS; i++) {
    const response = await fetch(`${api.url}/v1/tasks`, { method: 'POST', headers: { authorization: auth, 'content-type': 'application/json' }, body: JSON.stringify(validImageTask()) });
    taskIds.push(((await response.json()) as { task_id: string }).task_id);
  }
  const worker = await rig.procs.spawn('worker', { ...env, PUBLIC_BASE_URL: api.url });
  await waitUntil(() => rig.fake.createsInFlight === 2, 'two creates on the wire', { timeoutMs: 20_000, intervalMs: 5, context: () => rig.procs.describe() });
  const onTheWire = rig.fake.creates().map((request) => request.body.external_task_id as string);

  const exit = await worker.stop(20_000);

  expect(exit).toEqual({ code: 0, signal: null });
  const rows = await rig.pg.query<{ id: string; status: string }>('SELECT id, status FROM tasks WHERE id = ANY($1)', [taskIds]);
  const statusOf = Object.fromEntries(rows.rows.map((row) => [row.id, row.status]));
  // The two requests Kling was answering when the signal came were waited for and recorded...
  for (const id of onTheWire) expect(statusOf[id]).not.toBe('queued');
  // ...and nothing new was started after it.
  expect(rig.fake.creates()).toHaveLength(onTheWire.length);
  expect(Object.values(statusOf).filter((status) => status === 'queued')).toHaveLength(TASKS - onTheWire.length);

  await worker.start();
  await waitUntil(
    async () => (await rig.pg.query("SELECT count(*)::int AS n FROM tasks WHERE id = ANY($1) AND status = 'succeed'", [taskIds])).rows[0].n === TASKS,
    'every task to succeed after the restart',
    { timeoutMs: 40_000, context: () => rig.procs.describe() },
  );
  expect(rig.fake.creates()).toHaveLength(TASKS);
});
