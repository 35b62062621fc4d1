import express, { type Express } from 'express';
import type { DeliveryRepository } from '../db/delivery-repository';
import type { IdempotencyRepository } from '../db/idempotency-repository';
import type { TaskRepository } from '../db/task-repository';
import type { TenantRepository } from '../db/tenant-repository';
import { AppError } from '../errors';
import type { Logger } from '../logger';
import type { Metrics } from '../metrics/metrics';
import type { Enqueuer } from '../queue/enqueue';
import type { Throughput } from '../live/queue-position';
import type { TaskChangeBus } from '../live/task-change-bus';
import type { TenantLimits } from '../tasks/tenant-limits';
import type { TaskQueues } from '../queue/queues';
import type { CallbackTokens } from '../webhooks/callback-token';
import { authenticateApiKey } from './authenticate';
import { CONSOLE_PATH, consoleRoutes } from './console/console-routes';
import { problemErrorHandler, routeNotFound } from './error-middleware';
import { klingCompatRoutes } from './kling-compat/kling-compat-routes';
import { createAdmission } from './create-admission';
import { chain } from './chain';
import { jsonBody } from './json-body';
import { useRequestLogging } from './request-logging';
import { ADMIN_QUEUES_PATH, adminQueueRoutes } from './routes/admin-routes';
import { docsRoutes } from './routes/docs-routes';
import { healthRoutes, type ReadinessCheck } from './routes/health-routes';
import { metricsRoutes } from './routes/metrics-routes';
import { klingWebhookRoutes } from './routes/kling-webhook-routes';
import { taskRoutes } from './routes/task-routes';

export interface AppDeps {
  tasks: TaskRepository;
  tenants: TenantRepository;
  idempotency: IdempotencyRepository;
  deliveries: DeliveryRepository;
  enqueuer: Enqueuer;
  /** ALLOW_PRIVATE_CALLBACKS: accept client callback URLs on private or loopback addresses. */
  allowPrivateCallbacks: boolean;
  callbackTokens: CallbackTokens;
  logger: Logger;
  readinessChecks: Record<string, ReadinessCheck>;
  klingWebhookSecret?: string;
  /** Extra routers mounted before the API (the sandbox upstream). */
  extraRouters?: { path: string; router: express.Router }[];
  /** Served at GET /metrics, and fed by the webhook route. */
  metrics?: Metrics;
  /** ADMIN_TOKEN: when set (with the queues), Bull Board is served at /admin/queues behind it. */
  adminToken?: string;
  queues?: TaskQueues;
  taskChanges: TaskChangeBus;
  tenantLimits?: TenantLimits;
  /** API key lookups (cached, see api-key-cache.ts); the tenant repository itself when absent. */
  apiKeys?: Pick<TenantRepository, 'authenticate'>;
  /** Recent pace of submissions, for queued tasks' estimated start. */
  throughput: Throughput;
  /** FAIR_SHARE: queue positions count tenants' turns. */
  fairShare: boolean;
  /** SSE_HEARTBEAT_MS */
  sseHeartbeatMs: number;
  /** API_MAX_CONCURRENT_CREATES: creates read and stored at once per process (see create-admission.ts). */
  maxConcurrentCreates: number;
  /** API_CALLBACK_TARGET_MS: how much longer than the fastest recent callback a callback may take before creates give way further (see creates-beside-callbacks.ts). */
  callbackTargetMs: number;
}

/** Ten images of 10 MB in base64 fit; anything bigger is not a valid create request. */
export const JSON_BODY_LIMIT = '64mb';
export const JSON_BODY_LIMIT_BYTES = 64 * 1024 * 1024;

/** Builds the HTTP app without listening, so tests and entry points wire it as they need. */
export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  // No automatic ETag: Express would hash every JSON answer (and copy it into a Buffer) for a header no
  // client of this API uses; static files (console, docs assets) keep their own ETags.
  app.set('etag', false);
  app.set('trust proxy', 'loopback');
  useRequestLogging(app, deps.logger);
  // The busiest routes first: Express tries every earlier router on every request. No other route
  // lives under these paths, so the order changes nothing else.
  const creates = createAdmission(deps.maxConcurrentCreates, { targetMs: deps.callbackTargetMs });
  app.use(
    '/v1/tasks',
    chain(authenticateApiKey(deps.apiKeys ?? deps.tenants), jsonBody(JSON_BODY_LIMIT_BYTES), creates.admit, (req, _res, next) => {
      if (req.method === 'POST' && req.path === '/' && !req.is('application/json')) {
        throw new AppError('UNSUPPORTED_MEDIA_TYPE', 'Send the task as JSON with "Content-Type: application/json"');
      }
      next();
    }),
    taskRoutes({ ...deps, heartbeatMs: deps.sseHeartbeatMs }),
  );
  app.use('/webhooks/kling', creates.giveWay, klingWebhookRoutes(deps));
  app.use(healthRoutes(deps.readinessChecks, deps.logger));
  if (deps.metrics) app.use(metricsRoutes(deps.metrics));
  app.use(docsRoutes());
  app.use(CONSOLE_PATH, consoleRoutes());
  if (deps.adminToken && deps.queues) {
    const { submit, poll, notify, maintenance } = deps.queues;
    app.use(ADMIN_QUEUES_PATH, adminQueueRoutes({ adminToken: deps.adminToken, queues: [submit, poll, notify, maintenance] }));
  }
  for (const extra of deps.extraRouters ?? []) app.use(extra.path, extra.router);
  app.use('/kling', klingCompatRoutes({ ...deps, bodyLimit: JSON_BODY_LIMIT, admitCreate: creates.admitCreate }));
  app.use(routeNotFound);
  app.use(problemErrorHandler(deps.logger));
  return app;
}
