import { Client } from 'pg';
import { startFakeKling, type FakeKling } from '../helpers/fake-kling';
import { countBy, dropQueueKeys, eventCounts, runLabel, statusCounts, submitTasks, upstreamReport, waitAllTerminal } from '../helpers/fault-scenario';
import { assertBuilt, createTenantWithCli, serviceEnv, ServiceProcesses, type ServiceProcess } from '../helpers/service-processes';
import { createTestDatabase, uniqueQueuePrefix, type TestDatabase } from '../helpers/test-database';

/**
 * A 429 storm, with real processes: one API and TWO worker processes (built dist/), so only a limit kept
 * in Redis (BullMQ's global limiter, the queue-wide pause) can hold the rate; the machine's Postgres and
 * Redis under a unique database and prefix; a fake Kling that accepts at most 5 creates per sliding
 * second and answers the rest 429 / code 1302 with Retry-After. A burst of tasks submitted at once must
 * all reach `succeed`, none twice upstream (the fake does NOT dedupe external_task_id).
 *  - With our limiter at Kling's limit, Kling should hardly ever have to refuse.
 *  - With our limiter set 4x above it, Kling refuses a lot; the queue-wide pause on 1302 + Retry-After
 *    must still bring every task through without failing any.
 */

const TASKS = 60;
const KLING_LIMIT = { max: 5, windowMs: 1_000 };
const KLING_KEY = 'rate-limit-kling-key';
const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

jest.setTimeout(90_000);

let db: TestDatabase | undefined;
let pg: Client | undefined;
let fake: FakeKling | undefined;
let procs = new ServiceProcesses();
const prefixes: string[] = [];

beforeAll(async () => {
  assertBuilt();
  db = await createTestDatabase();
  pg = new Client({ connectionString: db.url });
  await pg.connect();
});

afterEach(async () => {
  await procs.killAll();
  procs = new ServiceProcesses();
  await fake?.stop();
  fake = undefined;
});

afterAll(async () => {
  await pg?.end().catch(() => undefined);
  await db?.drop();
  for (const prefix of prefixes) await dropQueueKeys(REDIS_URL, prefix);
});

interface StormFigures {
  taskIds: string[];
  workers: ServiceProcess[];
  rows: Record<string, number>;
  upstream: ReturnType<typeof upstreamReport>;
  events: Record<string, number>;
  durationMs: number;
  /** Rate refusals use up no attempt, so this may exceed KLING_MAX_ATTEMPTS without failing the task. */
  mostRefusalsForOneTask: number;
}

/** One API, two workers with our limiter at `ourLimit` per `ourWindowMs`, TASKS submitted at once; waits until all are terminal. */
async function storm(name: string, ourLimit: number, ourWindowMs: number): Promise<StormFigures> {
  fake = await startFakeKling({ expectedBearer: KLING_KEY, rateLimit: KLING_LIMIT, callbackDelayMs: 50, uniqueExternalTaskId: false });
  const queuePrefix = uniqueQueuePrefix();
  prefixes.push(queuePrefix);
  const env = serviceEnv({
    databaseUrl: db!.url,
    redisUrl: REDIS_URL,
    queuePrefix,
    klingBaseUrl: fake.baseUrl,
    klingApiKey: KLING_KEY,
    extra: {
      KLING_RATE_LIMIT_MAX: String(ourLimit),
      KLING_RATE_LIMIT_DURATION_MS: String(ourWindowMs),
      KLING_CONCURRENCY: '10',
      // The default cap (8): rate refusals must not use it up, however many a task meets.
      KLING_POLL_INTERVAL_MS: '10000',
    },
  });
  const api = await procs.spawn('api', env);
  const { auth } = await createTenantWithCli(db!.url, `${name}-${process.pid}-${prefixes.length}`);
  const workerEnv = { ...env, PUBLIC_BASE_URL: api.url };
  const workers = await Promise.all([procs.spawn('worker', workerEnv), procs.spawn('worker', workerEnv)]);

  const startedAt = Date.now();
  // All queued within well under a second (10 POSTs open at a time): far faster than Kling's 5/s drains them.
  // (60 POSTs open at once can exceed Prisma's 2 s transaction maxWait on a pool of 5 on a busy 2-CPU box:
  // that is the API's capacity, not what this file is about; reported separately.)
  const results = await submitTasks(api.url, auth, TASKS, { concurrency: 10, label: runLabel(name) });
  const refused = results.filter((r) => r.status !== 202);
  if (refused.length) {
    // What the API logged for its 500s, as evidence (the problem+json body says only "INTERNAL").
    const logged = api.logsMatching('request failed').slice(0, 2).map((line) => JSON.stringify(line.err).slice(0, 2_000));
    console.log(`${name}: ${refused.length} of ${TASKS} POSTs not accepted: ${JSON.stringify(countBy(refused, (r) => String(r.status)))}, slowest ${Math.max(...refused.map((r) => r.answeredAt - r.sentAt))} ms\n  ${logged.join('\n  ')}`);
  }
  expect(refused).toEqual([]);
  const taskIds = results.flatMap((r) => (r.taskId ? [r.taskId] : []));
  let waitError: unknown;
  try {
    await waitAllTerminal(() => pg!, taskIds, { timeoutMs: 60_000, context: () => procs.describe(15) });
  } catch (error) {
    waitError = error;
  }
  const durationMs = Date.now() - startedAt;
  const worst = await pg!.query<{ n: number }>(
    `SELECT coalesce(max(n), 0)::int AS n FROM (SELECT count(*) AS n FROM task_events
      WHERE task_id = ANY($1) AND type = 'submit_retry' AND (detail->>'rate_limited')::boolean GROUP BY task_id) per_task`,
    [taskIds],
  );
  const figures: StormFigures = {
    taskIds,
    workers,
    rows: await statusCounts(pg!, taskIds),
    upstream: upstreamReport(fake, taskIds, KLING_LIMIT.windowMs),
    events: await eventCounts(pg!, taskIds),
    durationMs,
    mostRefusalsForOneTask: worst.rows[0]?.n ?? 0,
  };
  const accepted = countBy(
    workers.flatMap((w) => w.logsMatching('task accepted by Kling')),
    (line) => `worker ${line.pid}`,
  );
  const u = figures.upstream;
  console.log(
    [
      `${name}: ${TASKS} tasks, 2 workers, our limit ${ourLimit}/${ourWindowMs} ms vs Kling's ${KLING_LIMIT.max}/${KLING_LIMIT.windowMs} ms, all terminal in ${durationMs} ms`,
      `  statuses: ${JSON.stringify(figures.rows)}; lost (accepted, not succeed): ${TASKS - (figures.rows.succeed ?? 0)}`,
      `  Kling: ${u.createRequests} create requests, ${u.rateLimited} answered 429/1302; max creates arriving in any ${KLING_LIMIT.windowMs} ms: ${u.maxCreatesInWindow}, max accepted: ${u.maxAcceptedInWindow}`,
      `  most 1302s suffered by one task: ${figures.mostRefusalsForOneTask} (rate refusals use up no attempt)`,
      `  upstream: ${u.upstreamTasks} tasks, duplicates: ${u.duplicates.length}, missing: ${u.missing.length}, task ids sent more than once: ${u.resent.length}, look-ups: ${u.queries}`,
      `  accepted per worker process: ${JSON.stringify(accepted)}`,
      `  events: ${JSON.stringify(figures.events)}`,
      `  creates per second of the run (accepted+refused): ${createsPerSecond(fake, startedAt)}`,
    ].join('\n'),
  );
  if (waitError) throw waitError;
  return figures;
}

/** "5 3+2 0+5 …": how the creates Kling saw fell into the run's seconds, accepted + refused. */
function createsPerSecond(kling: FakeKling, startedAt: number): string {
  const seconds: { accepted: number; refused: number }[] = [];
  for (const request of kling.creates()) {
    const second = Math.floor((request.at - startedAt) / 1_000);
    for (let i = seconds.length; i <= second; i++) seconds.push({ accepted: 0, refused: 0 });
    if (request.rateLimited) seconds[second]!.refused++;
    else seconds[second]!.accepted++;
  }
  return seconds.map((s) => (s.refused ? `${s.accepted}+${s.refused}` : String(s.accepted))).join(' ');
}

function expectAllDoneOnceAndNoExit(figures: StormFigures): void {
  expect(figures.rows).toEqual({ succeed: TASKS });
  expect(figures.upstream.missing).toEqual([]);
  expect(figures.upstream.duplicates).toEqual([]);
  expect(figures.upstream.upstreamTasks).toBe(TASKS);
  expect(figures.events.submit_failed ?? 0).toBe(0);
  for (const worker of figures.workers) expect(worker.exits).toEqual([]);
  // Both processes took part: the limit held across them, not within one.
  for (const worker of figures.workers) expect(worker.logsMatching('task accepted by Kling').length).toBeGreaterThan(0);
}

test(`when ${TASKS} tasks arrive at once and two workers share a limiter set to Kling's ${KLING_LIMIT.max}/s (with a 20% margin), then Kling's limit holds with few 429s and every task succeeds once`, async () => {
  // BullMQ counts per fixed window while Kling counts any rolling second: the README's advice is a window
  // ~20% wider than Kling's, which this uses.
  const figures = await storm('rate-limit-matched', KLING_LIMIT.max, KLING_LIMIT.windowMs * 1.2);

  expectAllDoneOnceAndNoExit(figures);
  expect(figures.upstream.maxAcceptedInWindow).toBeLessThanOrEqual(KLING_LIMIT.max);
  // Our limiter keeps the request rate at Kling's: refusals stay few (timing jitter at window edges, more
  // on a loaded machine) — against 75–150 when the limiter is set above Kling's, as in the next test.
  expect(figures.upstream.rateLimited).toBeLessThanOrEqual(TASKS / 4);
  // Creates are spread over the run: 60 at 5/s cannot take much less than 11 s.
  expect(figures.durationMs).toBeGreaterThanOrEqual(((TASKS / KLING_LIMIT.max - 1) * KLING_LIMIT.windowMs) * 0.9);
});

test(`when ${TASKS} tasks arrive at once and our limiter is 4x above Kling's, then Kling answers 1302 with Retry-After many times, yet every task succeeds, none fails and none is created twice`, async () => {
  const figures = await storm('rate-limit-above', KLING_LIMIT.max * 4, KLING_LIMIT.windowMs);

  expectAllDoneOnceAndNoExit(figures);
  expect(figures.upstream.maxAcceptedInWindow).toBeLessThanOrEqual(KLING_LIMIT.max);
  // Kling did push back, and the service heard it as a rate limit (the queue-wide pause), not as a failure.
  expect(figures.upstream.rateLimited).toBeGreaterThan(TASKS / 10);
  expect(figures.events['submit_retry(rate_limited)'] ?? 0).toBe(figures.upstream.rateLimited);
  expect(figures.upstream.resent.length).toBeGreaterThan(0);
});
