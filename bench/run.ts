import { answerTimesMs, callbackArrivals, callbackSentToArrivalMs, loggedCallbacks } from './api-log';
import { sseFanout } from './sse-fanout';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { Client } from 'pg';
import { parseConfig } from '../src/config';
import { migrate } from '../src/db/migrate';
import { createDb } from '../src/db/prisma';
import { createTenantRepository } from '../src/db/tenant-repository';
import { bullPrefix, SUBMIT_QUEUE } from '../src/queue/queues';
import { closedLoop, fixedCount, fixedRate, mergeResults, summarize, type LatencySummary, type LoadResult, type LoadTarget, type SecondSummary } from './load';
import { parseOptions, ROOT, type BenchOptions } from './options';
import { COMMIT_PROBE_EVERY_MS, prepareCommitProbe, startCommitProbe } from './commit-probe';
import { CLIENT_WEBHOOK_PATH } from './fake-kling';
import { cpuSeconds, FakeKlingChild, freePort, nodeFlagsOfScript, rssMb, ServiceChild, sleep } from './processes';
import { fmt, Progress, table } from './report';
import { tcpDropCounters, tcpDropsSince, type TcpDrops } from './tcp-counters';

/**
 * `npm run bench`: the service's submit path against the physical floor, then a burst end to end.
 * See bench/README.md for what is measured, how, and the numbers.
 */

const DIST = path.join(ROOT, 'dist');

/** A typical create request: Kling's image_refer example with URLs. */
const TASK_BODY = JSON.stringify({
  element_name: 'Bench hero',
  element_description: 'A subject created by the benchmark',
  reference_type: 'image_refer',
  element_image_list: {
    frontal_image: 'https://example.com/bench/hero-front.png',
    refer_images: [{ image_url: 'https://example.com/bench/hero-side.png' }],
  },
  tag_list: [{ tag_id: 'o_102' }],
});

/** Every process's connections to the bench database but the bench's own: backend pid → application_name. */
async function databaseBackends(pg: Client): Promise<Map<number, string>> {
  const { rows } = await pg.query<{ pid: number; application_name: string }>(
    "SELECT pid, application_name FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
  );
  return new Map(rows.map((row) => [row.pid, row.application_name]));
}

/** Of those backends, the ones serving one application_name: pid → CPU seconds so far. */
const backendCpu = (backends: Map<number, string>, applicationName: string): Map<number, number> =>
  new Map([...backends].filter(([, name]) => name === applicationName).map(([pid]) => [pid, cpuSeconds(pid, 'all', false)]));

/**
 * Connections to the bench database opened and closed (by any process) while a load ran, from who was
 * connected before and after it: one opened and closed within the run counts in neither.
 */
interface ConnectionChanges {
  opened: number;
  closed: number;
}

const connectionChanges = (before: Map<number, string>, after: Map<number, string>): ConnectionChanges => ({
  opened: [...after.keys()].filter((pid) => !before.has(pid)).length,
  closed: [...before.keys()].filter((pid) => !after.has(pid)).length,
});

/** The application_name a bench process's Postgres connections carry (see withApplicationName). */
const applicationNameOf = (server: ServiceChild): string => `ket-bench-${server.name}`;

const cpuDelta = (before: Map<number, number>, after: Map<number, number>): number =>
  [...after].reduce((sum, [pid, cpu]) => sum + (Number.isFinite(cpu) ? cpu - (before.get(pid) ?? 0) : 0), 0);

/** The database URL with an application_name, so each process's Postgres backends can be told apart. */
const withApplicationName = (databaseUrl: string, name: string): string => {
  const url = new URL(databaseUrl);
  url.searchParams.set('application_name', name);
  return url.toString();
};

/** Gauges of one scrape of a process's `GET /metrics` (prom-client's default metrics), NaN when absent. */
async function metricValues(metricsUrl: string, names: string[]): Promise<number[]> {
  let text = '';
  try {
    const response = await fetch(metricsUrl, { signal: AbortSignal.timeout(5_000) });
    text = await response.text();
  } catch {
    // Not served: every value NaN.
  }
  return names.map((name) => {
    const value = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1];
    return value === undefined ? Number.NaN : Number(value);
  });
}

/**
 * V8 heap in use (MB) from a process's GET /metrics (prom-client's nodejs_heap_size_used_bytes), NaN when
 * not served. Beside RSS, which V8 gives back to the OS late if at all, it tells growth from garbage.
 */
const heapUsedMb = async (metricsUrl: string): Promise<number> => (await metricValues(metricsUrl, ['nodejs_heap_size_used_bytes']))[0]! / 2 ** 20;

/**
 * The process's event-loop delay since the previous scrape, ms (prom-client resets its histogram on every
 * scrape, so scraping once before a phase makes the next scrape cover just that phase; hence one scrape
 * for both figures).
 */
async function eventLoopDelayMs(metricsUrl: string): Promise<{ p99: number; max: number }> {
  const [p99, max] = await metricValues(metricsUrl, ['nodejs_eventloop_lag_p99_seconds', 'nodejs_eventloop_lag_max_seconds']);
  return { p99: round2(p99! * 1000), max: round2(max! * 1000) };
}

/**
 * Empties the tasks (and, by cascade, the rows that reference them) between phases. The service is still
 * live meanwhile and may be adding a task event (the maintenance sweep, say, finding drained jobs missing),
 * which locks the two tables in the other order; Postgres then aborts one of the two as a deadlock (seen
 * twice in a day of runs; once it was the TRUNCATE, which ended the run). The TRUNCATE is tried again.
 */
async function emptyTasks(pg: Client): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await pg.query('TRUNCATE tasks CASCADE');
      return;
    } catch (error) {
      if ((error as { code?: string }).code !== '40P01' || attempt >= 5) throw error;
      await sleep(100);
    }
  }
}

/** Longest wait for ours' idle collections before a measured run; past it the run starts anyway. */
const IDLE_COLLECTIONS_TIMEOUT_MS = 60_000;

/**
 * Waits until none of the processes behind `metricsUrls` has an idle collection still to run
 * (`kling_tracker_idle_collections_due`, 0 or absent everywhere) and says how long that took, ms.
 * Scraped once a second: a scrape is work too, and frequent ones would keep a process from counting as
 * quiet.
 */
async function untilIdleCollectionsDone(metricsUrls: string[], onWait: (waitedMs: number) => void): Promise<{ waitedMs: number; timedOut: boolean }> {
  const started = Date.now();
  for (;;) {
    const due = await Promise.all(metricsUrls.map(async (url) => (await metricValues(url, ['kling_tracker_idle_collections_due']))[0]!));
    const waitedMs = Date.now() - started;
    if (due.every((value) => !(value > 0))) return { waitedMs, timedOut: false };
    if (waitedMs >= IDLE_COLLECTIONS_TIMEOUT_MS) return { waitedMs, timedOut: true };
    onWait(waitedMs);
    await sleep(1_000);
  }
}

interface SubmitFigures {
  rps: number;
  requests: number;
  errors: number;
  latency: LatencySummary;
  /** CPU of the server process per request, ms. */
  cpu_ms_per_request: number;
  /** CPU of the server process while loaded, in cores (1 = one core busy all the time). */
  cpu_cores: number;
  /** Share of that CPU spent in the kernel (socket I/O). */
  cpu_system_share: number;
  /** CPU of the Postgres backends serving that server, per request, ms. */
  postgres_cpu_ms_per_request: number;
  /** Over the measured rounds; see RateFigures.database_connections. */
  database_connections: ConnectionChanges;
  rounds: { rps: number; p50_ms: number; p99_ms: number }[];
  error_examples: string[];
}

interface RateFigures {
  target_rps: number;
  rps: number;
  requests: number;
  errors: number;
  latency: LatencySummary;
  /** By the second requests were due: is the tail a steady property or one spell (e.g. after a lull)? */
  per_second: SecondSummary[];
  /**
   * The load generator's own event-loop delay during the run, ms: it shares the machine, and a request it
   * sends late counts as late (latency runs from when the request was due).
   */
  generator_event_loop_delay_ms: { p50: number; p99: number; max: number };
  /**
   * The event-loop delay of a process with nothing to do (the fake Kling: no creates reach it while the
   * submit queue is paused), ms: how late the machine lets a waiting process run. Its spells are the
   * machine's, not the server's, and they reach every process of the run.
   */
  idle_process_event_loop_delay_ms: { p50: number; p99: number; max: number } | null;
  /**
   * A lone commit's round trip every 20 ms on a connection of its own (bench/commit-probe.ts): the
   * machine's Postgres and disk, which both servers commit through. A spell here that no process's event
   * loop shows is the disk's.
   */
  lone_commit_ms: LatencySummary;
  /** Ours only: the API's own answer times from its request log (it starts its clock when it reads the request). */
  server_answer?: LatencySummary;
  /**
   * CPU ms per request during the run: the server, its Postgres backends and the load generator. At a
   * fixed rate requests come one by one, so each costs more than in the closed loop's batches.
   */
  cpu_ms_per_request: { server: number; postgres: number; generator: number };
  /** The kernel's share of the server's CPU in the run (socket writes on loopback carry the receiver's delivery). */
  server_cpu_system_share: number;
  /**
   * Connections to the bench database that any process opened or closed during the run. Closing is a
   * disturbance: a pool closing its idle connections all at once held up the API's answers for 200–300 ms
   * (bench/README.md, twelfth session).
   */
  database_connections: ConnectionChanges;
}

const round2 = (value: number): number => Number(value.toFixed(2));
const round3 = (value: number): number => Number(value.toFixed(3));

async function main(): Promise<void> {
  const options = parseOptions();
  const progress = new Progress();
  const startedAt = new Date();
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const runId = `${process.pid}_${randomBytes(3).toString('hex')}`;
  const dbName = `ket_bench_${runId}`;
  const queuePrefix = `ket-bench-${runId}`;
  const databaseUrl = (() => {
    const url = new URL(options.adminDatabaseUrl);
    url.pathname = `/${dbName}`;
    return url.toString();
  })();
  const logDir = mkdtempSync(path.join(tmpdir(), 'ket-bench-'));
  const poolSize = options.poolSize ?? parseConfig({}).databasePoolSize;
  const machine = {
    cpus: cpus().length,
    cpu_model: cpus()[0]?.model ?? 'unknown',
    total_mem_mb: Math.round(totalmem() / 2 ** 20),
    node: process.version,
    platform: process.platform,
    // The machine may be shared: its load says how much the figures can be trusted.
    load_average_at_start: loadavg().map((value) => round2(value)),
  };

  console.log(
    `kling-element-tracker bench — ${machine.cpus} × ${machine.cpu_model}, node ${machine.node}, load average ${machine.load_average_at_start.join(' ')}${options.quick ? ' (quick mode: smoke sizes, figures not meaningful)' : ''}`,
  );
  console.log(
    `submit: ${options.connections} connections, warm-up ${options.warmupS} s, ${options.rounds} × ${options.durationS} s per target (A/B interleaved), half-peak ${options.halfDurationS} s · burst: ${options.burst} tasks over ${options.burstConnections} connections${options.clientWebhooks ? ', with client webhooks' : ''} · API processes ${options.apiProcesses}, pool ${poolSize}, KLING_CONCURRENCY ${options.klingConcurrency}`,
  );

  let succeeded = false;
  const cleanup: (() => Promise<void>)[] = [];
  const runCleanup = async () => {
    for (const step of cleanup.reverse()) await step().catch((error) => console.error(`clean-up: ${(error as Error).message}`));
    cleanup.length = 0;
  };
  const onSignal = () => {
    progress.log('interrupted: cleaning up');
    void runCleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    // --- Own database and queue prefix
    progress.update(`setting up database ${dbName}`);
    await migrate(databaseUrl);
    cleanup.push(async () => {
      if (options.keepDatabase) return void console.log(`kept database ${dbName}`);
      const admin = new Client({ connectionString: options.adminDatabaseUrl });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`).finally(() => admin.end());
    });
    const redis = new Redis(options.redisUrl, { maxRetriesPerRequest: null });
    cleanup.push(async () => {
      // Everything BullMQ stored under our prefix (the machine's Redis is shared).
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${bullPrefix(queuePrefix)}:*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length) await redis.del(...keys);
      } while (cursor !== '0');
      redis.disconnect();
    });
    const { apiKey, tenantId } = await (async () => {
      const db = createDb(databaseUrl, 1);
      try {
        const created = await createTenantRepository(db).createApiKey('bench');
        const tenant = await db.tenant.findUniqueOrThrow({ where: { name: 'bench' } });
        return { apiKey: created.apiKey, tenantId: tenant.id };
      } finally {
        await db.$disconnect();
      }
    })();
    const pg = new Client({ connectionString: databaseUrl });
    await pg.connect();
    cleanup.push(() => pg.end());

    // --- Processes: fake Kling, API, worker, floor
    progress.update('starting fake Kling, API, worker and floor');
    const fake = new FakeKlingChild();
    await fake.start();
    cleanup.push(() => fake.stop());
    const apiPort = await freePort();
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    const serviceEnv: Record<string, string> = {
      NODE_ENV: 'production',
      LOG_LEVEL: options.logLevel,
      DATABASE_URL: withApplicationName(databaseUrl, 'ket-bench-api'),
      ...(options.poolSize ? { DATABASE_POOL_SIZE: String(options.poolSize) } : {}),
      REDIS_URL: options.redisUrl,
      QUEUE_PREFIX: queuePrefix,
      PUBLIC_BASE_URL: apiUrl,
      KLING_BASE_URL: fake.url,
      KLING_API_KEY: 'bench-kling-key',
      KLING_CONCURRENCY: String(options.klingConcurrency),
      // The fake upstream must not be the bottleneck: no create rate limit to speak of.
      KLING_RATE_LIMIT_MAX: '1000000',
      KLING_RATE_LIMIT_DURATION_MS: '1000',
      WEBHOOK_SIGNING_SECRET: randomBytes(24).toString('base64url'),
      // The bench's tasks name placeholder image URLs; reading media is not part of what it measures.
      MEDIA_PRECHECK: 'off',
      // --client-webhooks: the clients' webhook receiver is the fake Kling, on loopback.
      ...(options.clientWebhooks ? { ALLOW_PRIVATE_CALLBACKS: 'true' } : {}),
      // --quick is a smoke test: a short quiet time keeps its waits for ours' idle collections short.
      ...(options.quick ? { IDLE_GC_AFTER_MS: '1000' } : {}),
      ...options.serviceEnv,
    };
    const profArgs = (name: string): string[] => {
      if (!options.cpuProfDir) return options.nodeArgs;
      mkdirSync(options.cpuProfDir, { recursive: true });
      return [...options.nodeArgs, '--cpu-prof', `--cpu-prof-dir=${options.cpuProfDir}`, `--cpu-prof-name=${name}-${stamp}.cpuprofile`];
    };
    // The service's own node flags first (package.json), then --node-args and --cpu-prof.
    const serviceNodeFlags = { api: nodeFlagsOfScript(ROOT, 'start:api'), worker: nodeFlagsOfScript(ROOT, 'start:worker') };
    const api = new ServiceChild('api', path.join(DIST, 'src', 'start-api.js'), { ...serviceEnv, PORT: String(apiPort), API_PROCESSES: String(options.apiProcesses) }, path.join(logDir, 'api.log'), [...serviceNodeFlags.api, ...profArgs('api')]);
    const workerMetricsPort = await freePort();
    const worker = new ServiceChild(
      'worker',
      path.join(DIST, 'src', 'start-worker.js'),
      { ...serviceEnv, DATABASE_URL: withApplicationName(databaseUrl, 'ket-bench-worker'), WORKER_METRICS_PORT: String(workerMetricsPort) },
      path.join(logDir, 'worker.log'),
      [...serviceNodeFlags.worker, ...profArgs('worker')],
    );
    const floorPort = await freePort();
    const floorUrl = `http://127.0.0.1:${floorPort}`;
    const floor = new ServiceChild(
      'floor',
      path.join(DIST, 'bench', 'floor-server.js'),
      { DATABASE_URL: withApplicationName(databaseUrl, 'ket-bench-floor'), DATABASE_POOL_SIZE: String(poolSize), REDIS_URL: options.redisUrl, QUEUE_PREFIX: queuePrefix, FLOOR_TENANT_ID: tenantId, PORT: String(floorPort) },
      path.join(logDir, 'floor.log'),
    );
    for (const child of [api, worker, floor]) cleanup.push(() => child.stop());
    // One at a time: each runs the migrations at start (under an advisory lock) and resolves the signing secret.
    api.start();
    await api.waitHealthy(apiUrl);
    worker.start();
    // Its metrics listener starts once the queue processors run: ready at any LOG_LEVEL.
    await worker.waitHealthy(`http://127.0.0.1:${workerMetricsPort}`, '/metrics');
    floor.start();
    await floor.waitHealthy(floorUrl);
    fake.send({ cmd: 'configure', apiBaseUrl: apiUrl, apiKey, callbackDelayMs: options.callbackDelayMs, measure: false });

    const headers = { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` };
    const ours: LoadTarget = { baseUrl: apiUrl, path: '/v1/tasks', headers, body: TASK_BODY };
    const floorTarget: LoadTarget = { baseUrl: floorUrl, path: '/v1/tasks', headers, body: TASK_BODY };

    const result: Record<string, unknown> = {
      version: 1,
      started_at: startedAt.toISOString(),
      quick: options.quick,
      machine,
      settings: {
        connections: options.connections,
        warmup_s: options.warmupS,
        duration_s: options.durationS,
        rounds: options.rounds,
        half_duration_s: options.halfDurationS,
        half_rate: options.halfRate,
        burst: options.burst,
        burst_connections: options.burstConnections,
        burst_warmup: options.burstWarmup,
        burst_rate: options.burstRate || 'as fast as accepted',
        callback_delay_ms: options.callbackDelayMs,
        client_webhooks: options.clientWebhooks,
        kling_concurrency: options.klingConcurrency,
        database_pool_size: poolSize,
        api_processes: options.apiProcesses,
        log_level: options.logLevel,
        service_env: options.serviceEnv,
        service_node_flags: serviceNodeFlags,
        node_args: options.nodeArgs,
        cpu_prof_dir: options.cpuProfDir ?? null,
      },
    };

    // --- 1 and 2: submit path vs floor, A/B interleaved
    if (options.phases.submit) {
      // Submits pile up unprocessed during this phase: the worker must not compete for the CPU (the
      // floor's jobs have no consumer either). They are thrown away before the burst.
      const submitQueue = new Queue(SUBMIT_QUEUE, { connection: redis, prefix: bullPrefix(queuePrefix) });
      await submitQueue.pause();
      // Its own connection, opened before anything is measured (a connection opening counts as a disturbance).
      const probeClient = new Client({ connectionString: withApplicationName(databaseUrl, 'ket-bench-commit-probe') });
      await probeClient.connect();
      cleanup.push(() => probeClient.end());
      await prepareCommitProbe(probeClient);
      /**
       * The load's outcome, with the CPU seconds the server (all, and the kernel's part) and its Postgres
       * backends spent meanwhile, and the database connections opened and closed meanwhile.
       */
      const withServerCpu = async <T>(server: ServiceChild, load: () => Promise<T>) => {
        const applicationName = applicationNameOf(server);
        const backendsBefore = await databaseBackends(pg);
        const pgBefore = backendCpu(backendsBefore, applicationName);
        const cpuBefore = cpuSeconds(server.pid);
        const sysBefore = cpuSeconds(server.pid, 'system');
        const outcome = await load();
        const cpuS = cpuSeconds(server.pid) - cpuBefore;
        const sysS = cpuSeconds(server.pid, 'system') - sysBefore;
        const backendsAfter = await databaseBackends(pg);
        const pgS = cpuDelta(pgBefore, backendCpu(backendsAfter, applicationName));
        return { outcome, cpuS, sysS, pgS, connections: connectionChanges(backendsBefore, backendsAfter) };
      };
      /**
       * Ours' API and worker run their idle collections (IDLE_GC_AFTER_MS) in the quiet after a busy spell:
       * after each of ours' runs, and after the worker's start-up: full collections of tens of ms, which
       * V8 spreads over more than one thread. Wherever one fell, it held up the run being measured then:
       * the floor's, nearly always (6–13 s after ours' run ended). Every measured run starts once they
       * are done (or skipped: src/idle-memory.ts).
       */
      const oursMetrics = [`${apiUrl}/metrics`, `http://127.0.0.1:${workerMetricsPort}/metrics`];
      let idleCollectionsWaitedMs = 0;
      const afterIdleCollections = async (label: string): Promise<void> => {
        const { waitedMs, timedOut } = await untilIdleCollectionsDone(oursMetrics, (ms) => progress.update(`${label}: waiting for ours' idle collections, ${fmt(ms / 1000, 0)} s`));
        idleCollectionsWaitedMs += waitedMs;
        if (timedOut) progress.log(`${label}: ours' idle collections still due after ${fmt(waitedMs / 1000, 0)} s; measuring anyway`);
      };
      const run = (label: string, target: LoadTarget, durationS: number, server: ServiceChild) =>
        withServerCpu(server, () =>
          closedLoop(target, {
            connections: options.connections,
            durationS,
            onProgress: (done, elapsed) => progress.update(`${label}: ${done} requests, ${fmt(done / elapsed, 0)}/s, ${fmt(elapsed, 1)}/${durationS} s`),
          }),
        );
      if (options.warmupS > 0) {
        await run('warm-up ours', ours, options.warmupS, api);
        await run('warm-up floor', floorTarget, options.warmupS, floor);
      }
      /** One target's measured rounds and what they cost, summed over the rounds. */
      const roundTotals = () => ({ rounds: [] as LoadResult[], cpuS: 0, sysS: 0, pgS: 0, connections: { opened: 0, closed: 0 } as ConnectionChanges });
      const totals = { ours: roundTotals(), floor: roundTotals() };
      for (let round = 1; round <= options.rounds; round++) {
        const order = round % 2 === 1 ? (['ours', 'floor'] as const) : (['floor', 'ours'] as const);
        for (const which of order) {
          const label = `round ${round}/${options.rounds} ${which}`;
          await afterIdleCollections(label);
          const { outcome, cpuS, sysS, pgS, connections } = await run(label, which === 'ours' ? ours : floorTarget, options.durationS, which === 'ours' ? api : floor);
          const sum = totals[which];
          sum.rounds.push(outcome);
          sum.cpuS += cpuS;
          sum.sysS += sysS;
          sum.pgS += pgS;
          sum.connections.opened += connections.opened;
          sum.connections.closed += connections.closed;
          progress.log(`round ${round} ${which.padEnd(5)} ${fmt(outcome.rps, 0)} req/s  p50 ${fmt(outcome.latency.p50_ms, 2)} ms  p99 ${fmt(outcome.latency.p99_ms, 2)} ms  errors ${outcome.errors}`);
        }
      }
      const figures = ({ rounds, cpuS, sysS, pgS, connections }: ReturnType<typeof roundTotals>): SubmitFigures => {
        const merged = mergeResults(rounds);
        return {
          rps: round2(merged.rps),
          requests: merged.requests,
          errors: merged.errors,
          latency: merged.latency,
          cpu_ms_per_request: round3((cpuS * 1000) / Math.max(1, merged.requests)),
          cpu_cores: round2(cpuS / Math.max(merged.elapsedS, 0.001)),
          cpu_system_share: round2(sysS / Math.max(cpuS, 0.001)),
          postgres_cpu_ms_per_request: round3((pgS * 1000) / Math.max(1, merged.requests)),
          database_connections: connections,
          rounds: rounds.map((r) => ({ rps: round2(r.rps), p50_ms: r.latency.p50_ms, p99_ms: r.latency.p99_ms })),
          error_examples: merged.errorExamples,
        };
      };
      const oursFigures = figures(totals.ours);
      const floorFigures = figures(totals.floor);

      // Half of each one's measured peak, as a fixed arrival rate.
      const half = async (label: string, target: LoadTarget, peak: number, server: ServiceChild): Promise<RateFigures> => {
        const rate = options.halfRate > 0 ? options.halfRate : Math.max(1, peak / 2);
        await afterIdleCollections(`half-peak ${label}`);
        // Warm at this rate first, as the closed-loop rounds are: the first seconds at a new rate were
        // among the slowest for ours and the floor alike (bench/README.md, eighth session).
        if (options.warmupS > 0) {
          await fixedRate(target, {
            connections: options.connections,
            rate,
            durationS: options.warmupS,
            onProgress: (done, elapsed) => progress.update(`warm-up ${label} at ${fmt(rate, 0)}/s: ${done} requests, ${fmt(elapsed, 1)}/${options.warmupS} s`),
          });
        }
        const loopDelay = monitorEventLoopDelay({ resolution: 5 });
        loopDelay.enable();
        fake.send({ cmd: 'reset' }); // its event-loop delay from here on: see idle_process_event_loop_delay_ms
        const commitProbe = startCommitProbe(probeClient);
        const since = Date.now();
        const { outcome: measured, cpuS, sysS, pgS, connections } = await withServerCpu(server, async () => {
          const generatorBefore = process.cpuUsage();
          const outcome = await fixedRate(target, {
            connections: options.connections,
            rate,
            durationS: options.halfDurationS,
            onProgress: (done, elapsed) => progress.update(`${label} at ${fmt(rate, 0)}/s: ${done} requests, ${fmt(elapsed, 1)}/${options.halfDurationS} s`),
          });
          loopDelay.disable();
          return { outcome, generatorUsage: process.cpuUsage(generatorBefore) };
        });
        const { outcome, generatorUsage } = measured;
        const idleProcessDelay = (await fake.stats()).eventLoopDelayMs ?? null;
        const commitMs = await commitProbe.stop();
        const perRequest = (seconds: number) => round3((seconds * 1000) / Math.max(1, outcome.requests));
        const serverSystemShare = round2(sysS / Math.max(cpuS, 0.001));
        const cpu = {
          server: perRequest(cpuS),
          postgres: perRequest(pgS),
          generator: perRequest((generatorUsage.user + generatorUsage.system) / 1e6),
        };
        const ms = (ns: number) => round2(ns / 1e6);
        const generatorDelay = { p50: ms(loopDelay.percentile(50)), p99: ms(loopDelay.percentile(99)), max: ms(loopDelay.max) };
        progress.log(`half-peak ${label.padEnd(5)} ${fmt(outcome.rps, 0)} req/s (target ${fmt(rate, 0)})  p50 ${fmt(outcome.latency.p50_ms, 2)} ms  p99 ${fmt(outcome.latency.p99_ms, 2)} ms  errors ${outcome.errors}`);
        return {
          target_rps: round2(rate),
          rps: round2(outcome.rps),
          requests: outcome.requests,
          errors: outcome.errors,
          latency: outcome.latency,
          per_second: outcome.perSecond ?? [],
          generator_event_loop_delay_ms: generatorDelay,
          idle_process_event_loop_delay_ms: idleProcessDelay,
          lone_commit_ms: commitMs,
          cpu_ms_per_request: cpu,
          server_cpu_system_share: serverSystemShare,
          database_connections: connections,
          ...(target === ours ? { server_answer: summarize(answerTimesMs(api.logFile, { method: 'POST', pathPrefix: '/v1/tasks', sinceEpochMs: since, untilEpochMs: Date.now() })) } : {}),
        };
      };
      const halfOurs = await half('ours', ours, oursFigures.rps, api);
      const halfFloor = await half('floor', floorTarget, floorFigures.rps, floor);
      result.submit = {
        ours: oursFigures,
        floor: floorFigures,
        ratio: round3(oursFigures.rps / floorFigures.rps),
        half_peak: { ours: halfOurs, floor: halfFloor },
        waited_for_idle_collections_s: round2(idleCollectionsWaitedMs / 1000),
      };

      progress.update('discarding the submit phase (jobs and rows) before the burst');
      await submitQueue.drain(true);
      await new Queue('floor-submit', { connection: redis, prefix: bullPrefix(queuePrefix) }).obliterate({ force: true });
      await emptyTasks(pg);
      await pg.query('VACUUM ANALYZE tasks');
      await pg.query('VACUUM ANALYZE task_events');
      await submitQueue.resume();
    }

    // --- 3 and 4: the burst, end to end, and memory
    if (options.phases.burst) {
      const finishedCount = async () => {
        const { rows } = await pg.query<{ n: string }>(`SELECT count(*) AS n FROM tasks WHERE status IN ('succeed', 'failed', 'canceled')`);
        return Number(rows[0]!.n);
      };
      const callbacksSettled = async () => {
        for (let i = 0; i < 300; i++) {
          const stats = await fake.stats();
          if (stats.pendingCallbacks === 0 && stats.visibleMs.length + stats.visibleFailures >= stats.callbacksSent - stats.callbackErrors) return;
          await sleep(50);
        }
      };
      // --client-webhooks: each task also names a client callback_url, so every status change is delivered.
      const burstTarget: LoadTarget = options.clientWebhooks
        ? { ...ours, body: JSON.stringify({ ...JSON.parse(TASK_BODY), callback_url: `${fake.url}${CLIENT_WEBHOOK_PATH}` }) }
        : ours;
      /** --client-webhooks: waits until no status webhook is pending, then what each took from its status change. */
      const clientWebhookFigures = async (started: number, deadline: number) => {
        while (Date.now() < deadline) {
          const { rows } = await pg.query<{ n: string }>(`SELECT count(*) AS n FROM webhook_deliveries WHERE state = 'pending'`);
          if (Number(rows[0]!.n) === 0) break;
          await sleep(100);
        }
        const settledS = (performance.now() - started) / 1000;
        const { rows } = await pg.query<{ state: string; ms: number | null }>(
          `SELECT state::text AS state, extract(epoch FROM delivered_at - created_at) * 1000 AS ms FROM webhook_deliveries`,
        );
        const delivered = rows.filter((row) => row.state === 'delivered');
        return {
          stored: rows.length,
          delivered: delivered.length,
          all_delivered_after_s: round2(settledS),
          status_change_to_delivered: summarize(delivered.map((row) => Number(row.ms))),
        };
      };
      // "Before" is a warm process, as the API already is after the submit phase: a small burst first
      // (JIT, pools, sockets), thrown away, so that before/after compares like with like.
      if (options.burstWarmup > 0) {
        progress.update(`warming up the pipeline with ${options.burstWarmup} tasks`);
        const warm = await fixedCount(burstTarget, { connections: options.burstConnections, count: options.burstWarmup });
        const deadline = Date.now() + options.burstTimeoutS * 1000;
        while ((await finishedCount()) < (warm.locations?.length ?? 0) && Date.now() < deadline) await sleep(100);
        await callbacksSettled();
        await emptyTasks(pg);
        await sleep(Math.min(2_000, options.settleS * 1000));
      }
      fake.send({ cmd: 'configure', apiBaseUrl: apiUrl, apiKey, callbackDelayMs: options.callbackDelayMs, measure: true });
      fake.send({ cmd: 'reset' });
      await sleep(500);
      const rss = { api: [] as number[], worker: [] as number[] };
      /** One sample per second for the JSON: [seconds since the burst began, api MB, worker MB]. */
      const timeline: [number, number, number][] = [];
      const sampleRss = () => {
        rss.api.push(rssMb(api.pid));
        rss.worker.push(rssMb(worker.pid));
        const t = Math.floor((performance.now() - started) / 1000);
        if (timeline.length === 0 || timeline.at(-1)![0] < t) timeline.push([t, Math.round(rss.api.at(-1)!), Math.round(rss.worker.at(-1)!)]);
      };
      const heapUsed = async () => ({ api: await heapUsedMb(`${apiUrl}/metrics`), worker: await heapUsedMb(`http://127.0.0.1:${workerMetricsPort}/metrics`) });
      const heapBefore = await heapUsed();
      await eventLoopDelayMs(`${apiUrl}/metrics`); // starts the API's delay histogram afresh for the burst
      const before = { api: rssMb(api.pid), worker: rssMb(worker.pid) };
      const cpuBefore = { api: cpuSeconds(api.pid), worker: cpuSeconds(worker.pid) };
      const tcpBefore = tcpDropCounters();
      const t0 = Date.now();
      const started = performance.now();
      let counts: Record<string, number> = {};
      let submitted = 0;
      let submitDone = false;
      const poll = async () => {
        const rows = await pg.query<{ status: string; n: string }>('SELECT status::text AS status, count(*) AS n FROM tasks GROUP BY status');
        counts = Object.fromEntries(rows.rows.map((row) => [row.status, Number(row.n)]));
      };
      const show = () => {
        const c = counts;
        progress.update(
          `burst ${fmt((performance.now() - started) / 1000, 1)} s: posted ${submitted}/${options.burst}${submitDone ? ' ✓' : ''} · queued ${c.queued ?? 0} submitted ${c.submitted ?? 0} processing ${c.processing ?? 0} succeed ${c.succeed ?? 0} failed ${c.failed ?? 0} · RSS api ${fmt(rss.api.at(-1), 0)} MB worker ${fmt(rss.worker.at(-1), 0)} MB`,
        );
      };
      let monitoring = true;
      const monitor = (async () => {
        while (monitoring) {
          sampleRss();
          await poll().catch(() => undefined);
          show();
          await sleep(250);
        }
      })();
      const burst =
        options.burstRate > 0
          ? await fixedRate(burstTarget, { connections: options.burstConnections, rate: options.burstRate, durationS: options.burst / options.burstRate, keepLocations: true, onProgress: (done) => (submitted = done) })
          : await fixedCount(burstTarget, { connections: options.burstConnections, count: options.burst, onProgress: (done) => (submitted = done) });
      submitted = burst.requests;
      submitDone = true;
      const accepted = burst.locations?.length ?? 0;
      const deadline = Date.now() + options.burstTimeoutS * 1000;
      for (;;) {
        await poll();
        const finished = (counts.succeed ?? 0) + (counts.failed ?? 0) + (counts.canceled ?? 0);
        if (finished >= accepted || Date.now() > deadline) break;
        await sleep(50);
      }
      const detectedS = (performance.now() - started) / 1000;
      const webhooks = options.clientWebhooks ? await clientWebhookFigures(started, deadline) : null;
      const cpuAfterBurst = { api: cpuSeconds(api.pid), worker: cpuSeconds(worker.pid) };
      const apiLoopDelay = await eventLoopDelayMs(`${apiUrl}/metrics`);
      // Let the last visibility checks finish.
      await callbacksSettled();
      const tcpDrops = tcpDropsSince(tcpBefore);
      const fakeStats = await fake.stats();
      progress.update(`burst done; settling ${options.settleS} s for the "after" memory sample`);
      const settleEnd = Date.now() + options.settleS * 1000;
      while (Date.now() < settleEnd) {
        await sleep(250);
        sampleRss();
      }
      monitoring = false;
      await monitor;
      const after = { api: rssMb(api.pid), worker: rssMb(worker.pid) };
      const heapAfter = await heapUsed();

      const ids = (burst.locations ?? []).map((location) => location.split('/').pop() ?? '');
      const check = await pg.query<{ found: string; succeed: string }>(
        `SELECT count(*) AS found, count(*) FILTER (WHERE status = 'succeed') AS succeed FROM tasks WHERE id = ANY($1::text[])`,
        [ids],
      );
      const times = await pg.query<{ first_created: Date; first_submitted: Date; last_submitted: Date; last_completed: Date }>(
        `SELECT min(created_at) AS first_created, min(submitted_at) AS first_submitted, max(submitted_at) AS last_submitted, max(completed_at) AS last_completed FROM tasks`,
      );
      const t = times.rows[0]!;
      const found = Number(check.rows[0]!.found);
      const succeed = Number(check.rows[0]!.succeed);
      const allSucceededS = t.last_completed ? (t.last_completed.getTime() - t0) / 1000 : Number.NaN;
      const workerSpanS = t.first_submitted && t.last_submitted ? (t.last_submitted.getTime() - t.first_submitted.getTime()) / 1000 : Number.NaN;
      const visible = summarize(fakeStats.visibleMs);
      const visibleByTime = splitByTime(fakeStats.visibleMs, fakeStats.visibleSentAt, t0, burst.elapsedS);
      const callbacksLogged = loggedCallbacks(api.logFile, t0);
      const answered = summarize(callbacksLogged.map((callback) => callback.responseTime));
      const sentToArrival = callbackSentToArrivalMs(fakeStats.callbackSends, callbackArrivals(callbacksLogged));
      // The fake Kling's GETs of the tasks (the second half of callback → visible), as the API timed them.
      const getsAnswered = summarize(answerTimesMs(api.logFile, { method: 'GET', pathPrefix: '/v1/tasks/', sinceEpochMs: t0 }));
      const complete = succeed === options.burst;
      const peak = { api: Math.max(before.api, ...rss.api.filter(Number.isFinite)), worker: Math.max(before.worker, ...rss.worker.filter(Number.isFinite)) };
      const memory = (which: 'api' | 'worker') => ({
        before_mb: round2(before[which]),
        peak_mb: round2(peak[which]),
        after_mb: round2(after[which]),
        after_vs_before: round3(after[which] / before[which]),
        heap_used_before_mb: round2(heapBefore[which]),
        heap_used_after_mb: round2(heapAfter[which]),
      });
      result.burst = {
        tasks: options.burst,
        connections: options.burstConnections,
        posted: burst.requests,
        accepted,
        submit_errors: burst.errors,
        submit_error_examples: burst.errorExamples,
        submit_s: round2(burst.elapsedS),
        submit_rps: round2(burst.rps),
        submit_latency: burst.latency,
        complete,
        all_succeeded_s: complete ? round2(allSucceededS) : null,
        detected_after_s: round2(detectedS),
        e2e_tasks_per_s: complete ? round2(options.burst / allSucceededS) : null,
        worker_tasks_per_s: round2(accepted / Math.max(workerSpanS, 0.001)),
        succeeded: succeed,
        not_succeeded: accepted - succeed,
        lost: accepted - found,
        status_counts: counts,
        upstream_creates: fakeStats.creates,
        duplicate_upstream_creates: fakeStats.duplicateCreates,
        callbacks_sent: fakeStats.callbacksSent,
        callback_errors: fakeStats.callbackErrors,
        callback_keep_alive_retries: fakeStats.keepAliveRetries,
        callback_error_examples: fakeStats.callbackErrorExamples,
        callback_to_visible: { ...visible, failures: fakeStats.visibleFailures },
        callback_to_visible_while_posting: visibleByTime.whilePosting,
        callback_to_visible_after_posting: visibleByTime.afterPosting,
        callback_to_visible_per_5_s: visibleByTime.perWindow,
        callback_sent_to_answered: summarize(fakeStats.callbackAnsweredMs),
        callback_sent_to_answered_on_new_connection: summarize(fakeStats.callbackAnsweredOnNewConnectionMs),
        tcp_drops: tcpDrops,
        fake_kling_event_loop_delay_ms: fakeStats.eventLoopDelayMs ?? null,
        api_event_loop_delay_ms: apiLoopDelay,
        callback_received_to_answered_by_api: answered,
        callback_sent_to_received_by_api: { kept_connection: summarize(sentToArrival.kept), new_connection: summarize(sentToArrival.new) },
        task_get_received_to_answered_by_api: getsAnswered,
        cpu_s: { api: round2(cpuAfterBurst.api - cpuBefore.api), worker: round2(cpuAfterBurst.worker - cpuBefore.worker) },
        client_webhooks: webhooks && { ...webhooks, received: fakeStats.clientWebhooks },
      };
      result.memory = { api: memory('api'), worker: memory('worker'), timeline_s_api_worker_mb: timeline };
      progress.log(
        `burst: ${accepted}/${options.burst} accepted in ${fmt(burst.elapsedS, 2)} s, ${succeed} succeed after ${fmt(allSucceededS, 2)} s; callback→visible p50 ${fmt(visible.p50_ms, 2)} ms p99 ${fmt(visible.p99_ms, 2)} ms`,
      );
    }

    // --- issue #9: SSE fan-out
    if (options.phases.sse) {
      const submitQueue = new Queue(SUBMIT_QUEUE, { connection: redis, prefix: bullPrefix(queuePrefix) });
      const tcpBefore = tcpDropCounters();
      const sse = await sseFanout({
        apiUrl,
        apiKey,
        streams: options.sseStreams,
        tasks: options.sseTasks,
        submitQueue,
        apiRssMb: () => rssMb(api.pid),
        apiHeapMb: () => heapUsedMb(`${apiUrl}/metrics`),
        progress: (text) => progress.update(text),
        timeoutS: options.burstTimeoutS,
      });
      await submitQueue.close();
      result.sse = { ...sse, tcp_drops: tcpDropsSince(tcpBefore) };
      progress.log(`sse: ${sse.streams} streams, ${sse.kb_per_stream.rss} KB RSS each; change → stream p50 ${fmt(sse.change_to_stream.p50_ms, 1)} ms p99 ${fmt(sse.change_to_stream.p99_ms, 1)} ms`);
    }

    (result.machine as Json).load_average_at_end = loadavg().map((value) => round2(value));
    result.targets = evaluateTargets(result);
    result.finished_at = new Date().toISOString();
    progress.clear();
    printTables(result);
    mkdirSync(options.resultsDir, { recursive: true });
    const file = path.join(options.resultsDir, `${stamp}.json`);
    writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`\nresults: ${path.relative(process.cwd(), file) || file}`);
    if (options.cpuProfDir) console.log(`CPU profiles (written when API and worker exit): ${options.cpuProfDir}`);
    succeeded = true;
  } finally {
    progress.update('cleaning up');
    await runCleanup();
    progress.clear();
    if (succeeded && !options.keepLogs) rmSync(logDir, { recursive: true, force: true });
    else console.error(`service logs kept in ${logDir}`);
  }
}

type Json = Record<string, any>;

/**
 * Callback → visible split by when the callback was sent: while the burst's creates were still being
 * posted (the API also busy accepting them) or after, and by 5 s window since the burst began.
 */
function splitByTime(samplesMs: number[], sentAt: number[], burstStartedAt: number, postingS: number) {
  const postingEnd = burstStartedAt + postingS * 1000;
  const whilePosting: number[] = [];
  const afterPosting: number[] = [];
  const windows = new Map<number, number[]>();
  samplesMs.forEach((ms, i) => {
    const at = sentAt[i]!;
    (at < postingEnd ? whilePosting : afterPosting).push(ms);
    const window = Math.max(0, Math.floor((at - burstStartedAt) / 5000)) * 5;
    const list = windows.get(window) ?? [];
    list.push(ms);
    windows.set(window, list);
  });
  const perWindow = [...windows.entries()].sort(([a], [b]) => a - b).map(([from_s, list]) => ({ from_s, ...summarize(list) }));
  return { whilePosting: summarize(whilePosting), afterPosting: summarize(afterPosting), perWindow };
}

function evaluateTargets(result: Json): Json {
  const targets: Json = {};
  const submit = result.submit as Json | undefined;
  if (submit) {
    targets.throughput_ratio_at_least_0_70 = { value: submit.ratio, met: submit.ratio >= 0.7 };
    targets.half_peak_p99_under_20_ms = { value: submit.half_peak.ours.latency.p99_ms, met: submit.half_peak.ours.latency.p99_ms < 20 };
  }
  const burst = result.burst as Json | undefined;
  if (burst) {
    targets.callback_to_visible_p99_under_50_ms = { value: burst.callback_to_visible.p99_ms, met: burst.callback_to_visible.p99_ms < 50 && burst.callback_to_visible.failures === 0 };
    const clean = burst.complete && burst.submit_errors === 0 && burst.lost === 0 && burst.callback_errors === 0 && burst.duplicate_upstream_creates === 0;
    targets.burst_complete_no_errors_no_loss = { value: `${burst.succeeded}/${burst.tasks} succeed, ${burst.lost} lost, ${burst.submit_errors + burst.callback_errors} errors`, met: clean };
    const memory = result.memory as Json;
    targets.rss_after_within_20_percent = {
      value: `api ×${memory.api.after_vs_before}, worker ×${memory.worker.after_vs_before}`,
      met: memory.api.after_vs_before <= 1.2 && memory.worker.after_vs_before <= 1.2,
    };
  }
  return targets;
}

/** Machine-wide, during the phase (see tcp-counters.ts): a dropped SYN costs its connection a second. */
const TCP_DROPS_LABEL = 'connections dropped at a full listen queue / SYNs sent again';
const tcpDropsText = (drops: TcpDrops | null): string => (drops ? `${drops.listen_overflows} / ${drops.syn_retransmits} (machine-wide)` : 'n/a');

/** A latency summary as "p50 / p99 / max ms". */
const p50p99max = (summary: Json): string => `${fmt(summary.p50_ms, 2)} / ${fmt(summary.p99_ms, 2)} / ${fmt(summary.max_ms, 2)} ms`;

function printTables(result: Json): void {
  const submit = result.submit as Json | undefined;
  if (submit) {
    const row = (name: string, f: Json, h: Json) => [name, fmt(f.rps, 0), fmt(f.latency.p50_ms, 2), fmt(f.latency.p99_ms, 2), fmt(f.cpu_ms_per_request, 3), fmt(f.cpu_cores, 2), fmt(f.postgres_cpu_ms_per_request, 3), f.errors, fmt(h.rps, 0), fmt(h.latency.p50_ms, 2), fmt(h.latency.p99_ms, 2)];
    console.log(`\nSubmit: POST /v1/tasks, ${result.settings.connections} connections, ${result.settings.rounds} × ${result.settings.duration_s} s per target, A/B interleaved`);
    console.log(
      table(
        ['', 'req/s', 'p50 ms', 'p99 ms', 'CPU ms/req', 'cores', 'PG CPU ms/req', 'errors', 'half-peak req/s', 'p50 ms', 'p99 ms'],
        [row('ours (API)', submit.ours, submit.half_peak.ours), row('floor', submit.floor, submit.half_peak.floor)],
      ),
    );
    console.log(`ratio = ours / floor = ${fmt(submit.ratio, 3)}`);
    const generator = (h: Json) => `${fmt(h.generator_event_loop_delay_ms.p99, 2)} / ${fmt(h.generator_event_loop_delay_ms.max, 2)} ms`;
    console.log(`half peak: the load generator's own event-loop delay p99 / max: ours ${generator(submit.half_peak.ours)}, floor ${generator(submit.half_peak.floor)}`);
    const idle = (h: Json) => (h.idle_process_event_loop_delay_ms ? `${fmt(h.idle_process_event_loop_delay_ms.p99, 2)} / ${fmt(h.idle_process_event_loop_delay_ms.max, 2)} ms` : '–');
    console.log(`half peak: an idle process's event-loop delay p99 / max (the machine's own spells): ours' run ${idle(submit.half_peak.ours)}, floor's ${idle(submit.half_peak.floor)}`);
    const commit = (h: Json) => `${fmt(h.lone_commit_ms.p50_ms, 2)} / ${fmt(h.lone_commit_ms.p99_ms, 2)} / ${fmt(h.lone_commit_ms.max_ms, 2)} ms`;
    console.log(`half peak: a lone commit's round trip every ${COMMIT_PROBE_EVERY_MS} ms (the machine's Postgres and disk) p50 / p99 / max: ours' run ${commit(submit.half_peak.ours)}, floor's ${commit(submit.half_peak.floor)}`);
    const server = submit.half_peak.ours.server_answer;
    if (server?.count) console.log(`half peak, ours: the API's own answer time (its request log) p50 / p99 / max ${p50p99max(server)}`);
    const cpu = (h: Json) => `${fmt(h.cpu_ms_per_request.server, 3)} / ${fmt(h.cpu_ms_per_request.postgres, 3)} / ${fmt(h.cpu_ms_per_request.generator, 3)}`;
    console.log(`half peak, CPU ms per request of server / its Postgres backends / load generator: ours ${cpu(submit.half_peak.ours)}, floor ${cpu(submit.half_peak.floor)}`);
    console.log(`half peak, kernel share of the server's CPU: ours ${fmt(submit.half_peak.ours.server_cpu_system_share, 2)}, floor ${fmt(submit.half_peak.floor.server_cpu_system_share, 2)}`);
    // A pool closing its connections mid-run held up the other side's answers (README, twelfth session).
    const connections = (f: Json) => `${f.database_connections.opened} / ${f.database_connections.closed}`;
    console.log(
      `database connections opened / closed by any process while measured: rounds: ours ${connections(submit.ours)}, floor ${connections(submit.floor)}; half peak: ours ${connections(submit.half_peak.ours)}, floor ${connections(submit.half_peak.floor)}`,
    );
    console.log(`waited for ours' idle collections before measured runs: ${fmt(submit.waited_for_idle_collections_s, 1)} s in all`);
  }
  const burst = result.burst as Json | undefined;
  if (burst) {
    console.log(`\nEnd to end: burst of ${burst.tasks} tasks over ${burst.connections} connections`);
    const v = burst.callback_to_visible;
    console.log(
      table(
        ['', 'value'],
        [
          ['accepted (202)', `${burst.accepted}/${burst.tasks}`],
          ['all posted after', `${fmt(burst.submit_s, 2)} s (${fmt(burst.submit_rps, 0)} req/s, p50 ${fmt(burst.submit_latency.p50_ms, 2)} ms, p99 ${fmt(burst.submit_latency.p99_ms, 2)} ms)`],
          ['all succeed after', burst.complete ? `${fmt(burst.all_succeeded_s, 2)} s` : `INCOMPLETE (${burst.succeeded} succeed)`],
          ['end-to-end tasks/s', fmt(burst.e2e_tasks_per_s, 0)],
          ['worker tasks/s (submitted upstream)', fmt(burst.worker_tasks_per_s, 0)],
          ['callback → visible p50 / p99 / max', `${p50p99max(v)} (${v.count} callbacks)`],
          ['  sent while the burst was being posted', `${p50p99max(burst.callback_to_visible_while_posting)} (${burst.callback_to_visible_while_posting.count})`],
          ['  sent after', `${p50p99max(burst.callback_to_visible_after_posting)} (${burst.callback_to_visible_after_posting.count})`],
          [
            '  of which the API: received → answered',
            burst.callback_received_to_answered_by_api.count
              ? `${p50p99max(burst.callback_received_to_answered_by_api)} (its request log)`
              : 'n/a (needs LOG_LEVEL info)',
          ],
          ['  callback sent → its answer read (fake Kling)', p50p99max(burst.callback_sent_to_answered)],
          ['    of those, on a new connection', `${burst.callback_sent_to_answered_on_new_connection.count} callbacks: ${p50p99max(burst.callback_sent_to_answered_on_new_connection)}`],
          ...(burst.callback_sent_to_received_by_api.kept_connection.count + burst.callback_sent_to_received_by_api.new_connection.count > 0
            ? [
                ['  callback sent → the API\'s router has it, kept connection', p50p99max(burst.callback_sent_to_received_by_api.kept_connection)],
                ['    new connection', p50p99max(burst.callback_sent_to_received_by_api.new_connection)],
              ]
            : []),
          ...(burst.task_get_received_to_answered_by_api?.count ? [['  the GETs that follow: received → answered by the API', p50p99max(burst.task_get_received_to_answered_by_api)]] : []),
          [TCP_DROPS_LABEL, tcpDropsText(burst.tcp_drops)],
          ['  the API\'s event-loop delay p99 / max', `${fmt(burst.api_event_loop_delay_ms.p99, 2)} / ${fmt(burst.api_event_loop_delay_ms.max, 2)} ms`],
          [
            '  the fake Kling\'s own event-loop delay p50 / p99 / max',
            burst.fake_kling_event_loop_delay_ms
              ? `${fmt(burst.fake_kling_event_loop_delay_ms.p50, 2)} / ${fmt(burst.fake_kling_event_loop_delay_ms.p99, 2)} / ${fmt(burst.fake_kling_event_loop_delay_ms.max, 2)} ms`
              : 'n/a',
          ],
          ['errors', `submit ${burst.submit_errors}, callbacks ${burst.callback_errors}, visibility ${v.failures}`],
          ['lost / not succeeded / sent twice', `${burst.lost} / ${burst.not_succeeded} / ${burst.duplicate_upstream_creates}`],
          ...(burst.client_webhooks
            ? [
                ['client webhooks: delivered / stored (received)', `${burst.client_webhooks.delivered} / ${burst.client_webhooks.stored} (${burst.client_webhooks.received})`],
                ['  status change → delivered', p50p99max(burst.client_webhooks.status_change_to_delivered)],
                ['  none pending after', `${fmt(burst.client_webhooks.all_delivered_after_s, 2)} s`],
              ]
            : []),
          ['CPU s during burst', `api ${fmt(burst.cpu_s.api, 1)}, worker ${fmt(burst.cpu_s.worker, 1)}`],
        ],
      ),
    );
    const m = result.memory as Json;
    console.log('\nMemory (RSS, MB)');
    console.log(
      table(
        ['', 'before', 'peak', 'after', 'after/before', 'V8 heap used before → after'],
        (['api', 'worker'] as const).map((which) => [
          which,
          fmt(m[which].before_mb, 1),
          fmt(m[which].peak_mb, 1),
          fmt(m[which].after_mb, 1),
          fmt(m[which].after_vs_before, 3),
          `${fmt(m[which].heap_used_before_mb, 1)} → ${fmt(m[which].heap_used_after_mb, 1)}`,
        ]),
      ),
    );
  }
  const sse = result.sse as Json | undefined;
  if (sse) {
    console.log(`\nLive streams (issue #9): ${sse.streams} SSE streams on ${sse.tasks} tasks`);
    console.log(
      table(
        ['', 'value'],
        [
          ['all open (first event on each) after', `${fmt(sse.open_s, 2)} s`],
          [TCP_DROPS_LABEL, tcpDropsText(sse.tcp_drops)],
          ['API RSS before → with streams', `${fmt(sse.rss_mb.before, 1)} → ${fmt(sse.rss_mb.with_streams, 1)} MB (${fmt(sse.kb_per_stream.rss, 1)} KB per stream)`],
          ['API V8 heap before → with streams', `${fmt(sse.heap_mb.before, 1)} → ${fmt(sse.heap_mb.with_streams, 1)} MB (${fmt(sse.kb_per_stream.heap, 1)} KB per stream)`],
          ['every stream ended (terminal) after', `${fmt(sse.all_terminal_s, 2)} s, ${sse.events_received} events`],
          ['status change → stream p50 / p99 / max', `${fmt(sse.change_to_stream.p50_ms, 1)} / ${fmt(sse.change_to_stream.p99_ms, 1)} / ${fmt(sse.change_to_stream.max_ms, 1)} ms`],
          ['spread across one task\'s streams p50 / p99', `${fmt(sse.spread_across_streams.p50_ms, 1)} / ${fmt(sse.spread_across_streams.p99_ms, 1)} ms`],
          ['streams without the terminal state', String(sse.errors)],
        ],
      ),
    );
  }
  const targets = result.targets as Json;
  if (Object.keys(targets).length) {
    console.log('\nTargets (issue #7)');
    console.log(table(['', 'value', 'met'], Object.entries(targets).map(([name, t]) => [name, String(t.value), t.met ? 'yes' : 'NO'])));
  }
}

main().then(
  () => process.exit(0),
  (error) => {
  console.error(`bench failed: ${(error as Error)?.stack ?? String(error)}`);
  process.exit(1);
  },
);
