import cluster from 'node:cluster';
import type { Server } from 'node:http';
import type { Express } from 'express';
import type { Redis } from 'ioredis';
import { createApp } from './api/app';
import { createApiKeyCache, revocationChannel, type ApiKeyCache } from './api/api-key-cache';
import { createHttpServer } from './api/http-server';
import { SANDBOX_PATH, type Config } from './config';
import { listen } from './listen';
import { createDb, type Db } from './db/prisma';
import { createSettingsRepository } from './db/settings-repository';
import { createDeliveryRepository, type DeliveryRepository } from './db/delivery-repository';
import { createIdempotencyRepository, type IdempotencyRepository } from './db/idempotency-repository';
import { createTaskRepository, type TaskRepository } from './db/task-repository';
import { createTenantRepository, type TenantRepository } from './db/tenant-repository';
import type { Logger } from './logger';
import { createThroughput, type Throughput } from './live/queue-position';
import { createRedisSubscriber } from './live/redis-subscriber';
import { createRedisTaskChangeBus, type TaskChangeBus } from './live/task-change-bus';
import { createFairShare } from './queue/fair-share';
import { createTenantLimits, type TenantLimits } from './tasks/tenant-limits';
import { createMediaPrecheck } from './media/media-precheck';
import { toTaskView } from './tasks/task-view';
import { createMetrics, type Metrics } from './metrics/metrics';
import { createEnqueuer, type Enqueuer } from './queue/enqueue';
import { createRedisConnection, createTaskQueues, type TaskQueues } from './queue/queues';
import { createKlingClient } from './upstream/kling-client';
import { createSandboxUpstream } from './upstream/sandbox-upstream';
import { callbackRoundParam } from './tasks/submission-round';
import { createCallbackTokens, type CallbackTokens } from './webhooks/callback-token';
import { toNotificationPayload } from './webhooks/notification-payload';
import { resolveSigningSecret } from './webhooks/signing-secret';
import { startWorkers, type RunningWorkers } from '../workers/start-workers';

/**
 * The composition root: connects Postgres and Redis once and wires every part from them. Entry points
 * (main, start-api, start-worker) and the tests build the service through here.
 */
export interface Runtime {
  config: Config;
  logger: Logger;
  db: Db;
  redis: Redis;
  queues: TaskQueues;
  tasks: TaskRepository;
  tenants: TenantRepository;
  deliveries: DeliveryRepository;
  idempotency: IdempotencyRepository;
  enqueuer: Enqueuer;
  callbackTokens: CallbackTokens;
  /** This process's Prometheus registry and the hooks that feed it (src/metrics). */
  metrics: Metrics;
  /** Tasks accepted by Kling per minute, across workers (queue position estimates). */
  throughput: Throughput;
  /** API key lookups, cached for API_KEY_CACHE_TTL_MS. */
  apiKeys: ApiKeyCache;
  /** Per-tenant admission limits, when configured. */
  tenantLimits?: TenantLimits;
  /** "Task X changed", across processes (live streams, Prefer: wait). */
  taskChanges: TaskChangeBus;
  close(): Promise<void>;
}

export async function createRuntime(config: Config, logger: Logger): Promise<Runtime> {
  const db = createDb(config.databaseUrl, config.databasePoolSize);
  const redis = createRedisConnection(config.redisUrl);
  // Redis errors are reported by /readyz and the enqueue path; without a listener ioredis would print each retry.
  redis.on('error', (error) => logger.debug({ err: error }, 'redis connection error'));
  const queues = createTaskQueues(redis, config.queuePrefix);
  // Each BullMQ queue re-emits the connection's errors; with no listener BullMQ console.errors every retry.
  for (const queue of [queues.submit, queues.poll, queues.maintenance, queues.notify]) queue.on('error', (error) => logger.debug({ err: error, queue: queue.name }, 'queue connection error'));
  const signingSecret = await resolveSigningSecret(config.webhookSigningSecret, createSettingsRepository(db));
  const enqueuer = createEnqueuer(queues, {
    maxAttempts: config.kling.maxAttempts,
    isConnected: () => redis.status === 'ready',
    fairShare: config.fairShare ? createFairShare(redis, config.queuePrefix) : undefined,
  });
  const metrics = createMetrics({
    queues: [queues.submit, queues.poll, queues.notify, queues.maintenance],
    isRedisReady: () => redis.status === 'ready',
    // Only API processes are forked by the API_PROCESSES supervisor (api-cluster.ts).
    clusterWide: cluster.isWorker,
  });
  // One pub/sub connection per process, opened by the first listener (API processes only, in practice).
  const subscriber = createRedisSubscriber(redis, logger);
  const taskChanges = createRedisTaskChangeBus(redis, subscriber, `${config.queuePrefix}:task-changes`, logger);
  const tasks = createTaskRepository(db, {
    notificationPayload: toNotificationPayload,
    onCreated: (task) => metrics.taskCreated(task),
    // A notification that cannot be queued now waits in Postgres for the maintenance sweep.
    onStatusChange: async (task) => {
      metrics.taskStatusChanged(task);
      await taskChanges.publish({ taskId: task.id, view: toTaskView(task) });
      if (!task.callbackUrl) return;
      await enqueuer.enqueueNotify(task.id).catch((error) => logger.warn({ taskId: task.id, err: error }, 'notification stored but not queued'));
    },
  });
  const tenants = createTenantRepository(db);
  const apiKeys = createApiKeyCache(tenants, { ttlMs: config.apiKeyCacheTtlMs, subscriber, channel: revocationChannel(config.queuePrefix) });
  const limits = config.tenantLimits;
  const tenantLimits = limits.maxInFlight > 0 || limits.maxSubmitsPerMinute > 0 ? createTenantLimits({ redis, keyPrefix: config.queuePrefix, tasks }, limits) : undefined;
  return {
    config,
    logger,
    db,
    tenantLimits,
    throughput: createThroughput(redis, config.queuePrefix),
    redis,
    queues,
    tasks,
    tenants,
    apiKeys,
    deliveries: createDeliveryRepository(db),
    idempotency: createIdempotencyRepository(db),
    enqueuer,
    callbackTokens: createCallbackTokens(signingSecret),
    metrics,
    taskChanges,
    async close() {
      // Creates already answered may still be queuing their jobs: let them finish while Redis is open.
      await enqueuer.drain();
      await subscriber.close();
      await queues.close().catch(() => undefined);
      // quit() queues behind commands waiting for an unreachable Redis and never returns; nothing to flush then.
      if (redis.status === 'ready') await redis.quit().catch(() => undefined);
      else redis.disconnect();
      await db.$disconnect();
    },
  };
}

export const isSandbox = (config: Config): boolean => config.kling.auth.kind === 'sandbox';

/** Starts the HTTP API; resolves once it listens. The default PUBLIC_BASE_URL is the address it got. */
export async function startApi(runtime: Runtime): Promise<{ server: Server; baseUrl: string; app: Express }> {
  const { config, logger } = runtime;
  const app = createApp({
    ...runtime,
    klingWebhookSecret: config.kling.webhookSecret,
    allowPrivateCallbacks: config.allowPrivateCallbacks,
    adminToken: config.adminToken,
    sseHeartbeatMs: config.sseHeartbeatMs,
    maxConcurrentCreates: config.maxConcurrentCreates,
    callbackTargetMs: config.callbackTargetMs,
    fairShare: config.fairShare,
    readinessChecks: {
      postgres: async () => {
        await runtime.db.$queryRaw`SELECT 1`;
      },
      redis: async () => {
        // While disconnected, ioredis would hold the ping until Redis is back; say so at once instead.
        if (runtime.redis.status !== 'ready') throw new Error(`connection is ${runtime.redis.status}`);
        await runtime.redis.ping();
      },
    },
    extraRouters: isSandbox(config) ? [{ path: SANDBOX_PATH, router: createSandboxUpstream({ stepDelayMs: config.sandboxStepDelayMs, logger }) }] : [],
  });
  const server = await listen(createHttpServer(app), config.port);
  keepConnectionsOpen(server, config.httpKeepAliveTimeoutMs);
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  return { server, baseUrl: `http://127.0.0.1:${port}`, app };
}

/**
 * Idle client connections stay open `ms` for their next request (Node closes them after 5 s). A new
 * connection is costly to a busy API: Node (libuv) accepts one new connection per turn of the event
 * loop, so under load a burst of new connections waits in the kernel's queue for seconds (`npm run
 * bench`: callbacks on fresh connections took p50 1.2 s, on reused ones p99 0.16 s). Clients and
 * proxies that keep their connections need none. Longer than the 60 s idle timeout of common load
 * balancers, so they, not we, close first. The headers timer is kept above it, so that it cannot cut a
 * kept connection first.
 */
function keepConnectionsOpen(server: Server, ms: number): void {
  server.keepAliveTimeout = ms;
  server.headersTimeout = Math.max(server.headersTimeout, ms + 1_000);
}

/** Starts the workers. `publicBaseUrl` is where Kling (or the sandbox) reaches our webhook route. */
export function startWorkerProcessors(runtime: Runtime, publicBaseUrl: string): Promise<RunningWorkers> {
  const { config } = runtime;
  const kling = createKlingClient({
    baseUrl: isSandbox(config) ? `${publicBaseUrl}${SANDBOX_PATH}` : config.kling.baseUrl,
    auth: config.kling.auth,
    timeoutMs: config.kling.requestTimeoutMs,
    maxInFlight: config.kling.concurrency,
    onRequest: ({ operation, code, durationSeconds }) => runtime.metrics.upstreamRequest(operation, code, durationSeconds),
  });
  const mediaPrecheck = config.media.precheck
    ? createMediaPrecheck({
        timeoutMs: config.media.fetchTimeoutMs,
        maxRedirects: config.media.maxRedirects,
        cacheTtlMs: config.media.cacheTtlMs,
        allowPrivate: config.allowPrivateCallbacks,
      })
    : undefined;
  return startWorkers(
    {
      ...runtime,
      kling,
      notifyQueue: runtime.queues.notify,
      recordSubmitted: () => runtime.throughput.record(),
      checkMedia: mediaPrecheck && ((task) => mediaPrecheck(task.request, { referMayEqualFrontal: task.callbackFormat === 'kling' })),
      callbackUrlFor: (task) => `${runtime.callbackTokens.callbackUrl(publicBaseUrl, task.id)}${callbackRoundParam(task)}`,
      maxAttempts: config.kling.maxAttempts,
      retryBaseDelayMs: config.kling.retryBaseDelayMs,
      requeueAfterMs: config.requeueAfterMs,
      notifyRequeueAfterMs: config.notifyRequeueAfterMs,
      pollIntervalMs: config.kling.pollIntervalMs,
      taskTimeoutMs: config.kling.taskTimeoutMs,
      retentionMs: config.retentionMs,
      webhook: { ...config.webhook, allowPrivate: config.allowPrivateCallbacks },
    },
    {
      connection: runtime.redis,
      queuePrefix: config.queuePrefix,
      concurrency: config.kling.concurrency,
      notifyConcurrency: config.webhook.concurrency,
      rateLimit: config.kling.rateLimit,
      stalledIntervalMs: config.worker.stalledIntervalMs,
      lockDurationMs: config.worker.lockDurationMs,
      maintenanceQueue: runtime.queues.maintenance,
      sweepIntervalMs: config.sweepIntervalMs,
      retryBaseDelayMs: config.kling.retryBaseDelayMs,
    },
  );
}
