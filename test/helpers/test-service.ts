import type { Server } from 'node:http';
import type { Writable } from 'node:stream';
import type { Express } from 'express';
import supertest from 'supertest';
import { parseConfig } from '../../src/config';
import { createLogger } from '../../src/logger';
import { createRuntime, startApi, startWorkerProcessors, type Runtime } from '../../src/runtime';
import type { RunningWorkers } from '../../workers/start-workers';
import { startFakeKling, type FakeKling, type FakeKlingOptions } from './fake-kling';
import { createTestDatabase, uniqueQueuePrefix, type TestDatabase } from './test-database';

export const TEST_KLING_API_KEY = 'test-kling-key';

export interface TestServiceOptions {
  /** Extra environment, as the service would read it. */
  env?: Record<string, string>;
  /** Start queue workers in-process (default true). */
  workers?: boolean;
  /** Use a fake Kling (default); false runs sandbox mode. */
  fakeKling?: FakeKlingOptions | false;
  /** Receives the service's JSON log lines (at LOG_LEVEL, default info when given) instead of silence. */
  logStream?: Writable;
}

export interface TestService {
  runtime: Runtime;
  /** The Express app the server runs (to inspect its routes). */
  app: Express;
  baseUrl: string;
  fake: FakeKling | undefined;
  db: TestDatabase;
  http: ReturnType<typeof supertest>;
  /** A new tenant with an API key: `auth` is the Authorization header value. */
  createTenant(name?: string): Promise<{ tenant: string; apiKey: string; apiKeyId: string; auth: string }>;
  /** Polls the task row until `predicate` holds (or times out with the last state in the message). */
  waitForTask(taskId: string, predicate: (task: NonNullable<Awaited<ReturnType<Runtime['tasks']['findById']>>>) => boolean, timeoutMs?: number): Promise<NonNullable<Awaited<ReturnType<Runtime['tasks']['findById']>>>>;
  /** Starts the in-process workers (once); resolves when they run. */
  startWorkers(): Promise<void>;
  stop(): Promise<void>;
}

let tenantCounter = 0;

/**
 * The whole service in-process, on its own database and queue prefix, listening on a loopback port so
 * the fake Kling can call back over real HTTP.
 */
export async function startTestService(options: TestServiceOptions = {}): Promise<TestService> {
  const db = await createTestDatabase();
  const fake = options.fakeKling === false ? undefined : await startFakeKling({ expectedBearer: TEST_KLING_API_KEY, ...options.fakeKling });
  const config = parseConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    PORT: '0',
    DATABASE_URL: db.url,
    DATABASE_POOL_SIZE: '5',
    REDIS_URL: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
    QUEUE_PREFIX: uniqueQueuePrefix(),
    KLING_RETRY_BASE_DELAY_MS: '50',
    KLING_REQUEST_TIMEOUT_MS: '2000',
    KLING_MAX_ATTEMPTS: '4',
    SANDBOX_STEP_DELAY_MS: '50',
    SWEEP_INTERVAL_MS: '250',
    ALLOW_PRIVATE_CALLBACKS: 'true',
    // Most tests name placeholder media URLs; the media tests turn the check on with a media server.
    MEDIA_PRECHECK: 'off',
    ...(fake ? { KLING_BASE_URL: fake.baseUrl, KLING_API_KEY: TEST_KLING_API_KEY } : {}),
    ...options.env,
  });
  const logLevel = options.logStream && !options.env?.LOG_LEVEL ? 'info' : config.logLevel;
  const logger = createLogger({ level: logLevel, destination: options.logStream });
  const runtime = await createRuntime(config, logger);
  const { server, baseUrl, app } = await startApi(runtime);
  let workers: Promise<RunningWorkers> | undefined;
  const service: TestService = {
    runtime,
    app,
    baseUrl,
    fake,
    db,
    http: supertest(baseUrl),
    async createTenant(name = `tenant-${process.pid}-${++tenantCounter}`) {
      const created = await runtime.tenants.createApiKey(name);
      return { tenant: created.tenant, apiKey: created.apiKey, apiKeyId: created.apiKeyId, auth: `Bearer ${created.apiKey}` };
    },
    async waitForTask(taskId, predicate, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      let last = await runtime.tasks.findById(taskId);
      while (!(last && predicate(last))) {
        if (Date.now() > deadline) throw new Error(`Task ${taskId} did not reach the expected state; last: ${JSON.stringify(last)}`);
        await new Promise((resolve) => setTimeout(resolve, 25));
        last = await runtime.tasks.findById(taskId);
      }
      return last;
    },
    async startWorkers() {
      workers ??= startWorkerProcessors(runtime, config.publicBaseUrl ?? baseUrl);
      await workers;
    },
    async stop() {
      await (await workers)?.close();
      await closeServer(server);
      await fake?.stop();
      // With Redis unreachable, obliterate would wait for it forever.
      if (runtime.redis.status === 'ready') {
        for (const queue of [runtime.queues.submit, runtime.queues.poll, runtime.queues.maintenance]) {
          await queue.obliterate({ force: true }).catch(() => undefined);
        }
      }
      await runtime.close();
      await db.drop();
    },
  };
  if (options.workers !== false) await service.startWorkers();
  return service;
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/**
 * Another API process of the same service (same database, Redis and QUEUE_PREFIX, its own connections
 * and port, no workers): what a second replica behind a load balancer is.
 */
export async function startSecondApi(
  service: TestService,
  overrides: Partial<Runtime['config']> = {},
): Promise<{ baseUrl: string; http: ReturnType<typeof supertest>; stop(): Promise<void> }> {
  const runtime = await createRuntime({ ...service.runtime.config, port: 0, ...overrides }, service.runtime.logger);
  const { server, baseUrl } = await startApi(runtime);
  return {
    baseUrl,
    http: supertest(baseUrl),
    async stop() {
      await closeServer(server);
      await runtime.close();
    },
  };
}
