import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { bullPrefix, MAINTENANCE_QUEUE } from '../../src/queue/queues';
import { useFaultRig } from '../helpers/fault-rig';
import { waitUntil } from '../helpers/fault-utils';
import { countBy, eventCounts, statusCounts, postTask, probe, runLabel, upstreamReport, waitAllTerminal, type PostResult } from '../helpers/fault-scenario';
import { createTenantWithCli, serviceEnv } from '../helpers/service-processes';

/**
 * Redis stopped for ~10 s in the middle of a burst of submissions, with real processes: one API and one
 * worker (built dist/), a private redis-server (no persistence, so it comes back EMPTY: every job, the
 * sweep's scheduler and the limiter state are gone), the machine's Postgres, the fake Kling over HTTP.
 * Every POST must still answer 202 (Postgres is the truth; the enqueue fails fast and the task waits),
 * /readyz must name Redis while it is down, and afterwards every task must reach `succeed` with exactly
 * one upstream task each (the fake does NOT dedupe external_task_id, so a second submit would show).
 */

const TASKS = 100;
/** One POST every PACE_MS: the burst lasts ~TASKS * PACE_MS, long enough to straddle the outage. */
const PACE_MS = 170;
/** The outage starts once this many POSTs have been answered. */
const OUTAGE_AFTER = 25;
const OUTAGE_MS = 10_000;
const KLING_KEY = 'redis-outage-kling-key';

jest.setTimeout(90_000);

const rig = useFaultRig({ privateRedis: true, fake: { expectedBearer: KLING_KEY, callbackDelayMs: 50, uniqueExternalTaskId: false } });

async function countJobSchedulers(redisUrl: string, queuePrefix: string): Promise<number> {
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue(MAINTENANCE_QUEUE, { connection, prefix: bullPrefix(queuePrefix) });
  try {
    return await queue.getJobSchedulersCount();
  } finally {
    await queue.close();
    connection.disconnect();
  }
}

test(`when Redis is stopped for ${OUTAGE_MS / 1000} s in the middle of a burst of ${TASKS} submissions, then every POST answers 202, /readyz names redis meanwhile, and every task reaches succeed with one upstream task each`, async () => {
  const startedAt = Date.now();
  const env = serviceEnv({
    databaseUrl: rig.db.url,
    redisUrl: rig.redis.url,
    klingBaseUrl: rig.fake.baseUrl,
    klingApiKey: KLING_KEY,
    extra: {
      KLING_CONCURRENCY: '10',
      KLING_RATE_LIMIT_MAX: '100',
      REQUEUE_AFTER_MS: '1000',
      SWEEP_INTERVAL_MS: '500',
      // Jobs that a live Redis lost are re-queued by the sweep; polling is not what brings them back.
      KLING_POLL_INTERVAL_MS: '3000',
    },
  });
  const api = await rig.procs.spawn('api', env);
  const { auth } = await createTenantWithCli(rig.db.url, `redis-outage-${process.pid}`);
  const worker = await rig.procs.spawn('worker', { ...env, PUBLIC_BASE_URL: api.url });
  const context = () => rig.procs.describe(15);

  // Ready before the outage.
  const before = await probe(`${api.url}/readyz`);
  expect(before.status).toBe(200);

  // The burst: one POST every PACE_MS, not waiting for answers (a slow answer would otherwise stretch it).
  const label = runLabel('redis-outage');
  const posts: Promise<PostResult>[] = [];
  let answered = 0;
  const burst = (async () => {
    for (let i = 0; i < TASKS; i++) {
      posts.push(
        postTask(api.url, auth, i, label).then((result) => {
          answered++;
          return result;
        }),
      );
      await new Promise((resolve) => setTimeout(resolve, PACE_MS));
    }
    return Promise.all(posts);
  })();

  // The outage, in the middle of the burst.
  await waitUntil(() => answered >= OUTAGE_AFTER, `${OUTAGE_AFTER} POSTs answered before the outage`, { timeoutMs: 20_000, context });
  const outage = { stoppedAt: 0, startedAt: 0, readyz503: undefined as undefined | { afterMs: number; body: string }, readyz200AfterMs: 0 };
  outage.stoppedAt = Date.now();
  await rig.redis.stop();
  const during = await waitUntil(
    async () => {
      const answer = await probe(`${api.url}/readyz`);
      return answer.status === 503 ? answer : undefined;
    },
    '/readyz to answer 503 while Redis is down',
    { timeoutMs: 5_000, intervalMs: 100, context },
  );
  outage.readyz503 = { afterMs: during.at - outage.stoppedAt, body: during.text };
  const report = JSON.parse(during.text) as { status: string; checks: Record<string, string> };
  expect(report.status).toBe('unavailable');
  expect(report.checks.redis).toMatch(/^unavailable/);
  expect(report.checks.postgres).toBe('ok');
  // Keep Redis down for the rest of the outage while the burst goes on (this wait is the outage itself).
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, outage.stoppedAt + OUTAGE_MS - Date.now())));
  outage.startedAt = Date.now();
  await rig.redis.start();
  await waitUntil(async () => (await probe(`${api.url}/readyz`)).status === 200, '/readyz to answer 200 after Redis is back', {
    timeoutMs: 15_000,
    intervalMs: 100,
    context,
  });
  outage.readyz200AfterMs = Date.now() - outage.startedAt;

  const results = await burst;
  const taskIds = results.flatMap((r) => (r.taskId ? [r.taskId] : []));
  const duringOutage = results.filter((r) => r.sentAt >= outage.stoppedAt && r.sentAt < outage.startedAt);
  const slowest = Math.max(...results.map((r) => r.answeredAt - r.sentAt));

  let waitError: unknown;
  try {
    await waitAllTerminal(() => rig.pg, taskIds, { timeoutMs: 30_000, context });
  } catch (error) {
    waitError = error;
  }
  const rows = await statusCounts(rig.pg, taskIds);
  // Redis came back empty: did the maintenance sweep's job scheduler come back too?
  const sweepSchedulers = await countJobSchedulers(rig.redis.url, env.QUEUE_PREFIX!);
  const upstream = upstreamReport(rig.fake, taskIds);
  const events = await eventCounts(rig.pg, taskIds);
  const stuck = await rig.pg.query<{ id: string; status: string }>(`SELECT id, status FROM tasks WHERE id = ANY($1) AND status <> 'succeed' ORDER BY id LIMIT 3`, [taskIds]);
  console.log(
    [
      `redis-outage: ${TASKS} tasks, 1 Redis outage of ${outage.startedAt - outage.stoppedAt} ms (data lost on restart), finished in ${Date.now() - startedAt} ms`,
      `  POST answers: ${JSON.stringify(countBy(results, (r) => String(r.status)))}; sent during the outage: ${duringOutage.length} (${JSON.stringify(countBy(duringOutage, (r) => String(r.status)))}); slowest answer ${slowest} ms`,
      `  /readyz: 503 ${outage.readyz503.afterMs} ms after the stop (${outage.readyz503.body}); 200 again ${outage.readyz200AfterMs} ms after the start`,
      `  statuses: ${JSON.stringify(rows)}; lost (accepted, not succeed): ${taskIds.length - (rows.succeed ?? 0) + (TASKS - taskIds.length)}`,
      `  upstream: ${upstream.upstreamTasks} tasks, duplicates: ${upstream.duplicates.length}, missing: ${upstream.missing.length}, create requests: ${upstream.createRequests} (resent: ${upstream.resent.length}), look-ups: ${upstream.queries}, max creates in 1 s: ${upstream.maxCreatesInWindow}`,
      `  events: ${JSON.stringify(events)}`,
      `  maintenance-sweep job schedulers in Redis after the restart: ${sweepSchedulers}; sweeps that re-queued: ${worker.logsMatching('maintenance sweep').filter((l) => Number(l.requeued) > 0).length}`,
      `  process exits: api ${api.exits.length}, worker ${worker.exits.length}`,
      ...(stuck.rows.length ? [`  not succeed (first 3): ${JSON.stringify(stuck.rows)}`] : []),
    ].join('\n'),
  );
  if (waitError) throw waitError;

  // Every POST accepted: none refused, none 5xx, none failed on the wire.
  expect(results.filter((r) => r.status !== 202)).toEqual([]);
  expect(new Set(taskIds).size).toBe(TASKS);
  // The burst really straddled the outage, and those tasks took the "stored but not queued" path.
  expect(duringOutage.length).toBeGreaterThanOrEqual(30);
  expect(events.enqueue_failed ?? 0).toBeGreaterThan(0);
  expect(rows).toEqual({ succeed: TASKS });
  expect(upstream.missing).toEqual([]);
  expect(upstream.duplicates).toEqual([]);
  expect(upstream.resent).toEqual([]);
  expect(upstream.upstreamTasks).toBe(TASKS);
  // Neither process died of the outage.
  expect(api.exits).toEqual([]);
  expect(worker.exits).toEqual([]);
  expect(api.running() && worker.running()).toBe(true);
});
