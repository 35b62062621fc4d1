import { Client } from 'pg';
import { migrate } from '../../src/db/migrate';
import { startFakeKling, type FakeKling } from '../helpers/fake-kling';
import { waitUntil } from '../helpers/fault-utils';
import {
  countBy,
  dropQueueKeys,
  eventCounts,
  looksLikeStackTrace,
  postTask,
  probe,
  runLabel,
  statusCounts,
  submitTasks,
  upstreamReport,
} from '../helpers/fault-scenario';
import { startPrivatePostgres, type PrivatePostgres } from '../helpers/private-postgres';
import { assertBuilt, createTenantWithCli, serviceEnv, ServiceProcesses } from '../helpers/service-processes';
import { uniqueQueuePrefix } from '../helpers/test-database';

/**
 * Postgres stopped while Kling's callbacks are flowing, with real processes: one API and one worker (built
 * dist/), a private PostgreSQL cluster (stopped and started again on the same port, data kept), the
 * machine's Redis under a unique prefix, and a fake Kling that calls back late and re-sends a callback
 * that was not answered 2xx (as Kling may). While Postgres is down the API must answer 503 problem+json
 * with Retry-After (no 500s, no stack traces); afterwards every task must reach `succeed` (re-sent
 * callbacks or polling), nothing is sent upstream twice, and neither process exits.
 */

const TASKS = 50;
const OUTAGE_MS = 6_000;
const KLING_KEY = 'pg-outage-kling-key';
const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

jest.setTimeout(90_000);

let postgres: PrivatePostgres | undefined;
let fake: FakeKling | undefined;
let databaseUrl = '';
const queuePrefix = uniqueQueuePrefix();
const procs = new ServiceProcesses();

beforeAll(async () => {
  assertBuilt();
  [postgres, fake] = await Promise.all([
    startPrivatePostgres(),
    startFakeKling({
      expectedBearer: KLING_KEY,
      // processing ~2.5 s after the create, succeed ~2.5 s later: most callbacks fall into the outage.
      callbackDelayMs: 2_500,
      // A callback answered non-2xx (503 while Postgres is down) is sent again every 500 ms, 20 times.
      callbackRetries: { attempts: 20, delayMs: 500 },
      uniqueExternalTaskId: false,
    }),
  ]);
  databaseUrl = postgres.urlFor('ket_pg_outage');
  await migrate(databaseUrl);
});

afterAll(async () => {
  await procs.killAll();
  await fake?.stop();
  await postgres?.destroy();
  await dropQueueKeys(REDIS_URL, queuePrefix);
});

/** A fresh connection per read: the private cluster goes away and comes back. */
async function withPg<T>(read: (pg: Client) => Promise<T>): Promise<T> {
  const pg = new Client({ connectionString: databaseUrl, connectionTimeoutMillis: 3_000 });
  await pg.connect();
  try {
    return await read(pg);
  } finally {
    await pg.end().catch(() => undefined);
  }
}

interface Answer {
  what: string;
  status: number;
  contentType: string | null;
  retryAfter: string | null;
  text: string;
}

test(`when Postgres is stopped for ${OUTAGE_MS / 1000} s while Kling's callbacks are flowing, then the API answers 503 problem+json with Retry-After meanwhile, and afterwards every task reaches succeed with nothing sent twice and no process exit`, async () => {
  const startedAt = Date.now();
  const env = serviceEnv({
    databaseUrl,
    redisUrl: REDIS_URL,
    queuePrefix,
    klingBaseUrl: fake!.baseUrl,
    klingApiKey: KLING_KEY,
    extra: {
      KLING_CONCURRENCY: '10',
      KLING_RATE_LIMIT_MAX: '20',
      // Tasks whose callbacks Kling gave up on are read back by polling.
      KLING_POLL_INTERVAL_MS: '2000',
      REQUEUE_AFTER_MS: '2000',
      SWEEP_INTERVAL_MS: '500',
    },
  });
  const api = await procs.spawn('api', env);
  const { auth } = await createTenantWithCli(databaseUrl, `pg-outage-${process.pid}`);
  const worker = await procs.spawn('worker', { ...env, PUBLIC_BASE_URL: api.url });
  const context = () => procs.describe(15);

  const results = await submitTasks(api.url, auth, TASKS, { concurrency: 10, label: runLabel('pg-outage') });
  expect(results.filter((r) => r.status !== 202)).toEqual([]);
  const taskIds = results.flatMap((r) => (r.taskId ? [r.taskId] : []));
  expect(new Set(taskIds).size).toBe(TASKS);

  // All submitted upstream, callbacks about to flow (the first ones may have landed).
  await waitUntil(() => fake!.tasks.size >= TASKS, `${TASKS} tasks created upstream`, { timeoutMs: 20_000, context });
  await waitUntil(
    async () => (await withPg((pg) => statusCounts(pg, taskIds))).queued === undefined,
    'every task to have left queued',
    { timeoutMs: 10_000, intervalMs: 100, context },
  );
  // Stop Postgres once callbacks have started to land: some tasks move on before, most during the outage.
  await waitUntil(() => fake!.callbackResponses.filter((c) => c.status === 200).length >= 5, 'the first callbacks to be answered 200', {
    timeoutMs: 10_000,
    intervalMs: 10,
    context,
  });
  const before = await withPg((pg) => statusCounts(pg, taskIds));
  const callbacksBefore = fake!.callbackResponses.length;

  // The outage.
  const stoppedAt = Date.now();
  await postgres!.stop();
  const answers: Answer[] = [];
  const ask = async (what: string, url: string, init: RequestInit = {}): Promise<Answer> => {
    const answer = await probe(url, init);
    const recorded = {
      what,
      status: answer.status,
      contentType: answer.headers?.get('content-type') ?? null,
      retryAfter: answer.headers?.get('retry-after') ?? null,
      text: answer.text,
    };
    answers.push(recorded);
    return recorded;
  };
  const someTask = taskIds[TASKS - 1]!;
  // The first answers after the stop may still come from a pooled connection being torn down: wait for the 503.
  const firstGet = await waitUntil(
    async () => {
      const answer = await ask('GET task', `${api.url}/v1/tasks/${someTask}`, { headers: { authorization: auth } });
      return answer.status === 503 ? answer : undefined;
    },
    'GET /v1/tasks/:id to answer 503 while Postgres is down',
    { timeoutMs: 5_000, intervalMs: 100, context },
  );
  const firstGetAfterMs = Date.now() - stoppedAt;
  const readyz = await ask('GET /readyz', `${api.url}/readyz`);
  const post = await postTask(api.url, auth, 999, runLabel('pg-outage-during'));
  answers.push({ what: 'POST task', status: post.status, contentType: null, retryAfter: null, text: post.error ?? '' });
  // Keep asking for the rest of the outage: every answer must be the same 503 (never a 500).
  while (Date.now() < stoppedAt + OUTAGE_MS) {
    await ask('GET task', `${api.url}/v1/tasks/${someTask}`, { headers: { authorization: auth } });
    await ask('GET kling-compat task', `${api.url}/kling/v1/general/advanced-custom-elements/${someTask}`, { headers: { authorization: auth } });
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  const callbacksDuringOutage = fake!.callbackResponses.slice(callbacksBefore);
  const restartedAt = Date.now();
  await postgres!.start();
  await waitUntil(async () => (await probe(`${api.url}/v1/tasks/${someTask}`, { headers: { authorization: auth } })).status === 200, 'GET /v1/tasks/:id to answer 200 after Postgres is back', {
    timeoutMs: 20_000,
    intervalMs: 100,
    context,
  });
  const recoveredAfterMs = Date.now() - restartedAt;

  let waitError: unknown;
  try {
    await waitUntil(
      async () => {
        const rows = await withPg((pg) => statusCounts(pg, taskIds));
        return rows.succeed === TASKS || ['failed', 'canceled'].some((s) => rows[s]) ? rows : undefined;
      },
      `all ${TASKS} tasks to reach succeed`,
      { timeoutMs: 45_000, intervalMs: 250, context },
    );
  } catch (error) {
    waitError = error;
  }
  const rows = await withPg((pg) => statusCounts(pg, taskIds));
  const events = await withPg((pg) => eventCounts(pg, taskIds));
  const upstream = upstreamReport(fake!, taskIds);
  const callbackStatuses = countBy(fake!.callbackResponses, (c) => String(c.status));
  const outageStatuses = countBy(answers, (a) => `${a.what} ${a.status}`);
  console.log(
    [
      `postgres-outage: ${TASKS} tasks, 1 Postgres outage of ${restartedAt - stoppedAt} ms during callbacks, finished in ${Date.now() - startedAt} ms`,
      `  before the outage: ${JSON.stringify(before)}, ${callbacksBefore} callbacks answered`,
      `  during the outage: API answers ${JSON.stringify(outageStatuses)}; first 503 ${firstGetAfterMs} ms after the stop (Retry-After ${firstGet.retryAfter}, ${firstGet.contentType}); /readyz ${readyz.status} ${readyz.text}`,
      `  callbacks: ${fake!.callbackResponses.length} deliveries by answer ${JSON.stringify(callbackStatuses)} (${callbacksDuringOutage.length} during the outage: ${JSON.stringify(countBy(callbacksDuringOutage, (c) => String(c.status)))})`,
      `  API answered 200 again ${recoveredAfterMs} ms after the start`,
      `  statuses: ${JSON.stringify(rows)}; lost (accepted, not succeed): ${TASKS - (rows.succeed ?? 0)}`,
      `  upstream: ${upstream.upstreamTasks} tasks, duplicates: ${upstream.duplicates.length}, missing: ${upstream.missing.length}, create requests: ${upstream.createRequests} (resent: ${upstream.resent.length}), look-ups/polls: ${upstream.queries}`,
      `  events: ${JSON.stringify(events)}`,
      `  process exits: api ${api.exits.length}, worker ${worker.exits.length}`,
      // A 500 means an error the middleware did not recognise as "database unavailable": show what it was.
      ...api.logsMatching('request failed', true).slice(0, 3).map((line) => `  API 500: ${line.method} ${line.path}: ${JSON.stringify(line.err).slice(0, 1_500)}`),
    ].join('\n'),
  );
  if (waitError) throw waitError;

  // During the outage: 503 problem+json with Retry-After and no internals, for every request.
  expect(firstGet.contentType).toMatch(/^application\/problem\+json/);
  expect(Number(firstGet.retryAfter)).toBeGreaterThan(0);
  const problem = JSON.parse(firstGet.text) as { status: number; code: string; detail: string };
  expect(problem).toMatchObject({ status: 503, code: 'SERVICE_UNAVAILABLE' });
  const afterFirst = answers.slice(answers.indexOf(firstGet));
  const v1Answers = afterFirst.filter((a) => a.what === 'GET task');
  expect(v1Answers.filter((a) => a.status !== 503 || !a.retryAfter || !/^application\/problem\+json/.test(a.contentType ?? ''))).toEqual([]);
  expect(afterFirst.filter((a) => a.what === 'GET kling-compat task' && (a.status !== 503 || !a.retryAfter || JSON.parse(a.text).code !== 5001))).toEqual([]);
  expect(post.status).toBe(503);
  expect(readyz.status).toBe(503);
  expect(JSON.parse(readyz.text).checks.postgres).toMatch(/^unavailable/);
  // /readyz is public: it says which dependency is down, not the driver's message (host, port, user).
  expect(readyz.text).not.toMatch(/127\.0\.0\.1|localhost|ECONNREFUSED|database server|postgres@/i);
  // (/readyz is the operators' probe, not an API answer: it is left out of the stack-trace check.)
  expect(afterFirst.filter((a) => a.what !== 'GET /readyz' && looksLikeStackTrace(a.text))).toEqual([]);
  // Callbacks that hit the outage were refused with 503 (so Kling re-sends them), never 500.
  expect(callbacksDuringOutage.filter((c) => c.status !== 0 && c.status !== 200 && c.status !== 503)).toEqual([]);
  expect(fake!.callbackResponses.filter((c) => c.status >= 500 && c.status !== 503)).toEqual([]);
  expect(callbacksDuringOutage.filter((c) => c.status === 503).length).toBeGreaterThan(0);

  // Afterwards: everything finished, nothing sent twice, nobody died.
  expect(rows).toEqual({ succeed: TASKS });
  expect(upstream.duplicates).toEqual([]);
  expect(upstream.resent).toEqual([]);
  expect(upstream.upstreamTasks).toBe(TASKS);
  expect(api.exits).toEqual([]);
  expect(worker.exits).toEqual([]);
});
