import { z } from 'zod';

/** Env flags accept the usual spellings; anything else is a configuration error, not "false". */
const flag = (fallback: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'])
    .default(fallback ? 'true' : 'false')
    .transform((value) => ['true', '1', 'yes', 'on'].includes(value));

const httpUrl = z
  .url({ protocol: /^https?$/, error: 'must be an http(s) URL' })
  .transform((value) => value.replace(/\/+$/, ''));

const positiveInt = z.coerce.number().int().positive();
const optionalSecret = z.string().min(1).optional();

const envSchema = z
  .object({
    NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    PORT: z.coerce.number().int().min(0).max(65535).default(3000),
    DATABASE_URL: z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'must be a postgresql:// URL')
      .default('postgresql://postgres@127.0.0.1:5432/kling_tracker'),
    /**
     * Connections per process (API, worker: each has its own pool). Not "one per core": a connection stays
     * checked out until a busy event loop gets round to the answer, so under a burst the API's Kling
     * callbacks (one UPDATE each) queued for a connection with 10 (bench: their answer p50 ~50 ms with
     * 20 vs ~70 ms with 10, the submit path unchanged).
     */
    DATABASE_POOL_SIZE: positiveInt.default(20),
    REDIS_URL: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL').default('redis://127.0.0.1:6379'),
    QUEUE_PREFIX: z
      .string()
      .regex(/^[A-Za-z0-9_{}-]+$/, 'may contain only letters, digits, _, -, { and }')
      .default('ket'),
    /** Base of the callback_url sent upstream; must be reachable by Kling. */
    PUBLIC_BASE_URL: httpUrl.optional(),
    KLING_BASE_URL: httpUrl.default('https://api-singapore.klingai.com'),
    /** Static bearer token, as gateways issue. */
    KLING_API_KEY: optionalSecret,
    /** Official API key pair; the worker signs a short-lived HS256 JWT from them. */
    KLING_ACCESS_KEY: optionalSecret,
    KLING_SECRET_KEY: optionalSecret,
    KLING_POLL_INTERVAL_MS: positiveInt.default(30_000),
    KLING_CONCURRENCY: positiveInt.default(5),
    /** Create requests to Kling per KLING_RATE_LIMIT_DURATION_MS, shared by every worker process. */
    KLING_RATE_LIMIT_MAX: positiveInt.default(10),
    KLING_RATE_LIMIT_DURATION_MS: positiveInt.default(1_000),
    /** A task Kling accepted but has not finished after this long fails with UPSTREAM_TIMEOUT. */
    KLING_TASK_TIMEOUT_MS: positiveInt.default(2 * 60 * 60_000),
    /** How often the maintenance sweep runs (re-queue lost jobs, poll quiet tasks, time out stuck ones). */
    SWEEP_INTERVAL_MS: positiveInt.default(10_000),
    /** A `queued` task untouched this long is checked for a live job and re-queued if it has none. */
    REQUEUE_AFTER_MS: positiveInt.default(30_000),
    /**
     * A client notification pending this long is checked for a live job and re-queued if it has none: its
     * job was lost (a worker gone between storing and queuing, Redis emptied) or the worker could not look
     * again after the task's previous job completed (notify-client.ts). Shorter than REQUEUE_AFTER_MS.
     */
    NOTIFY_REQUEUE_AFTER_MS: positiveInt.default(5_000),
    /** How long one upstream HTTP request may take before it counts as a timeout. */
    KLING_REQUEST_TIMEOUT_MS: positiveInt.default(30_000),
    /** Submit attempts per task before it fails with the last upstream error. */
    KLING_MAX_ATTEMPTS: positiveInt.default(8),
    /** First retry delay; later ones grow exponentially (with jitter) unless Kling sends Retry-After. */
    KLING_RETRY_BASE_DELAY_MS: positiveInt.default(2_000),
    WEBHOOK_SIGNING_SECRET: z.string().min(16, 'must be at least 16 characters').optional(),
    KLING_WEBHOOK_SECRET: optionalSecret,
    ALLOW_PRIVATE_CALLBACKS: flag(false),
    /** How long a client's webhook receiver may take to answer one notification. */
    WEBHOOK_TIMEOUT_MS: positiveInt.default(10_000),
    /**
     * Tasks whose notifications one worker process delivers at once. They wait on clients' receivers (up
     * to WEBHOOK_TIMEOUT_MS each), not on Kling, so KLING_CONCURRENCY (5), which bounded them before, let
     * five slow receivers hold up every other tenant's notifications in that process.
     */
    NOTIFY_CONCURRENCY: positiveInt.default(50),
    /** Comma-separated waits before each retry of a failed notification (default about a day in all). */
    WEBHOOK_RETRY_SCHEDULE_MS: z
      .string()
      .regex(/^\d+(,\d+)*$/, 'must be comma-separated milliseconds, e.g. 5000,30000,120000')
      .transform((value) => value.split(',').map(Number))
      .default([5_000, 30_000, 120_000, 600_000, 3_600_000, 3 * 3_600_000, 6 * 3_600_000, 12 * 3_600_000]),
    /** Read every media URL and hold it to Kling's rules before submitting (off: Kling alone judges them). */
    MEDIA_PRECHECK: flag(true),
    /** Connecting to a media server, or waiting for its next bytes, longer than this is a (retried) failure. */
    MEDIA_FETCH_TIMEOUT_MS: positiveInt.default(10_000),
    MEDIA_MAX_REDIRECTS: z.coerce.number().int().min(0).max(10).default(3),
    /** A checked URL is not read again for this long while a HEAD shows the same ETag or size. */
    MEDIA_CACHE_TTL_MS: z.coerce.number().int().min(0).default(5 * 60_000),
    ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
    /** How often BullMQ looks for jobs of crashed workers, and how long a job's lock lasts without renewal. */
    WORKER_STALLED_INTERVAL_MS: positiveInt.default(30_000),
    WORKER_LOCK_DURATION_MS: positiveInt.default(30_000),
    /** A worker-only process (`start:worker`) serves GET /metrics on this port when set; the API serves its own. */
    WORKER_METRICS_PORT: z.coerce.number().int().min(1).max(65535).optional(),
    /** `start:api` runs this many API processes sharing the port (node:cluster); 1: the API in this process. */
    API_PROCESSES: z.coerce.number().int().min(1, 'must be at least 1').max(64).default(1),
    /** Recognised API keys are kept in memory this long (revocations announced on Redis apply at once); 0: look up every request. */
    API_KEY_CACHE_TTL_MS: z.coerce.number().int().min(0).default(5_000),
    /** Finished tasks and their events are purged this many days after they finished (0: kept forever). */
    RETENTION_DAYS: z.coerce.number().min(0).default(30),
    /** Submit jobs are ordered round-robin between tenants (off: first come, first served). */
    FAIR_SHARE: flag(true),
    /** Per-tenant limits on unfinished tasks and on submits per minute; 0 = no limit. */
    TENANT_MAX_IN_FLIGHT: z.coerce.number().int().min(0).default(0),
    TENANT_MAX_SUBMITS_PER_MINUTE: z.coerce.number().int().min(0).default(0),
    /** Live task streams send a heartbeat comment (and re-read the task) this often. */
    SSE_HEARTBEAT_MS: positiveInt.default(15_000),
    /** How long the API keeps an idle client connection open for its next request (Node's default: 5 s). */
    HTTP_KEEP_ALIVE_TIMEOUT_MS: z.coerce.number().int().min(1, 'must be at least 1').max(299_000, "must be at most 299000 (under Node's 300 s request timeout)").default(65_000),
    /**
     * Creates read and stored at once per API process; more wait their turn (callbacks and reads do not).
     * A create holds its place until its row is committed, so the limit also caps creates a second at
     * about limit / time to store one: 16 held a 2-core machine that stored a create in ~4 ms (then: batch
     * linger, statement, commit) to ~4,100/s, 0.63 of the bench's floor (0.91-1.01 with 32 or 64).
     */
    API_MAX_CONCURRENT_CREATES: positiveInt.default(64),
    /** How much longer than the fastest recent Kling callback a callback may take in the API before creates give way further (see creates-beside-callbacks.ts). */
    API_CALLBACK_TARGET_MS: positiveInt.default(8),
    /** After a busy spell, a process idle this long runs a full garbage collection, and a second after as long again (see idle-memory.ts); 0: never. */
    IDLE_GC_AFTER_MS: z.coerce.number().int().min(0).default(5_000),
    /** Delay between the simulated upstream's status changes in sandbox mode. */
    SANDBOX_STEP_DELAY_MS: z.coerce.number().int().min(0).default(1_500),
  })
  .superRefine((env, ctx) => {
    if (Boolean(env.KLING_ACCESS_KEY) !== Boolean(env.KLING_SECRET_KEY)) {
      ctx.addIssue({
        code: 'custom',
        path: [env.KLING_ACCESS_KEY ? 'KLING_SECRET_KEY' : 'KLING_ACCESS_KEY'],
        message: 'KLING_ACCESS_KEY and KLING_SECRET_KEY must be set together',
      });
    }
  });

export type KlingAuth =
  | { kind: 'bearer'; apiKey: string }
  | { kind: 'jwt'; accessKey: string; secretKey: string }
  | { kind: 'sandbox' };

export interface Config {
  nodeEnv: 'development' | 'production' | 'test';
  logLevel: string;
  port: number;
  databaseUrl: string;
  databasePoolSize: number;
  redisUrl: string;
  queuePrefix: string;
  /** Undefined until known: it defaults to the address the API actually listens on. */
  publicBaseUrl: string | undefined;
  kling: {
    baseUrl: string;
    auth: KlingAuth;
    pollIntervalMs: number;
    taskTimeoutMs: number;
    concurrency: number;
    rateLimit: { max: number; durationMs: number };
    requestTimeoutMs: number;
    maxAttempts: number;
    retryBaseDelayMs: number;
    webhookSecret: string | undefined;
  };
  webhookSigningSecret: string | undefined;
  allowPrivateCallbacks: boolean;
  webhook: { timeoutMs: number; retryScheduleMs: number[]; concurrency: number };
  media: { precheck: boolean; fetchTimeoutMs: number; maxRedirects: number; cacheTtlMs: number };
  adminToken: string | undefined;
  /** Undefined: finished tasks are kept forever. */
  retentionMs: number | undefined;
  apiKeyCacheTtlMs: number;
  /** API processes `start:api` runs (node:cluster). */
  apiProcesses: number;
  fairShare: boolean;
  tenantLimits: { maxInFlight: number; maxSubmitsPerMinute: number };
  sseHeartbeatMs: number;
  /** IDLE_GC_AFTER_MS; 0: off. */
  idleGcAfterMs: number;
  /** HTTP_KEEP_ALIVE_TIMEOUT_MS */
  httpKeepAliveTimeoutMs: number;
  maxConcurrentCreates: number;
  /** API_CALLBACK_TARGET_MS */
  callbackTargetMs: number;
  sandboxStepDelayMs: number;
  sweepIntervalMs: number;
  requeueAfterMs: number;
  notifyRequeueAfterMs: number;
  worker: { stalledIntervalMs: number; lockDurationMs: number; metricsPort: number | undefined };
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

function chooseKlingAuth(env: z.infer<typeof envSchema>): KlingAuth {
  if (env.KLING_ACCESS_KEY && env.KLING_SECRET_KEY) {
    return { kind: 'jwt', accessKey: env.KLING_ACCESS_KEY, secretKey: env.KLING_SECRET_KEY };
  }
  if (env.KLING_API_KEY) return { kind: 'bearer', apiKey: env.KLING_API_KEY };
  return { kind: 'sandbox' };
}

/** Parses the environment once at start-up; throws a ConfigError naming every bad variable. */
export function parseConfig(source: NodeJS.ProcessEnv = process.env): Config {
  // Empty strings are how shells and compose files say "unset".
  const env = Object.fromEntries(Object.entries(source).filter(([, value]) => value !== ''));
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => `${issue.path.join('.') || 'environment'}: ${issue.message}`),
    );
  }
  const e = parsed.data;
  return {
    nodeEnv: e.NODE_ENV,
    logLevel: e.LOG_LEVEL,
    port: e.PORT,
    databaseUrl: e.DATABASE_URL,
    databasePoolSize: e.DATABASE_POOL_SIZE,
    redisUrl: e.REDIS_URL,
    queuePrefix: e.QUEUE_PREFIX,
    publicBaseUrl: e.PUBLIC_BASE_URL,
    kling: {
      baseUrl: e.KLING_BASE_URL,
      auth: chooseKlingAuth(e),
      pollIntervalMs: e.KLING_POLL_INTERVAL_MS,
      taskTimeoutMs: e.KLING_TASK_TIMEOUT_MS,
      concurrency: e.KLING_CONCURRENCY,
      rateLimit: { max: e.KLING_RATE_LIMIT_MAX, durationMs: e.KLING_RATE_LIMIT_DURATION_MS },
      requestTimeoutMs: e.KLING_REQUEST_TIMEOUT_MS,
      maxAttempts: e.KLING_MAX_ATTEMPTS,
      retryBaseDelayMs: e.KLING_RETRY_BASE_DELAY_MS,
      webhookSecret: e.KLING_WEBHOOK_SECRET,
    },
    webhookSigningSecret: e.WEBHOOK_SIGNING_SECRET,
    allowPrivateCallbacks: e.ALLOW_PRIVATE_CALLBACKS,
    webhook: { timeoutMs: e.WEBHOOK_TIMEOUT_MS, retryScheduleMs: e.WEBHOOK_RETRY_SCHEDULE_MS, concurrency: e.NOTIFY_CONCURRENCY },
    media: { precheck: e.MEDIA_PRECHECK, fetchTimeoutMs: e.MEDIA_FETCH_TIMEOUT_MS, maxRedirects: e.MEDIA_MAX_REDIRECTS, cacheTtlMs: e.MEDIA_CACHE_TTL_MS },
    adminToken: e.ADMIN_TOKEN,
    sandboxStepDelayMs: e.SANDBOX_STEP_DELAY_MS,
    sseHeartbeatMs: e.SSE_HEARTBEAT_MS,
    idleGcAfterMs: e.IDLE_GC_AFTER_MS,
    httpKeepAliveTimeoutMs: e.HTTP_KEEP_ALIVE_TIMEOUT_MS,
    maxConcurrentCreates: e.API_MAX_CONCURRENT_CREATES,
    callbackTargetMs: e.API_CALLBACK_TARGET_MS,
    fairShare: e.FAIR_SHARE,
    apiKeyCacheTtlMs: e.API_KEY_CACHE_TTL_MS,
    apiProcesses: e.API_PROCESSES,
    retentionMs: e.RETENTION_DAYS > 0 ? e.RETENTION_DAYS * 24 * 3_600_000 : undefined,
    tenantLimits: { maxInFlight: e.TENANT_MAX_IN_FLIGHT, maxSubmitsPerMinute: e.TENANT_MAX_SUBMITS_PER_MINUTE },
    sweepIntervalMs: e.SWEEP_INTERVAL_MS,
    requeueAfterMs: e.REQUEUE_AFTER_MS,
    notifyRequeueAfterMs: e.NOTIFY_REQUEUE_AFTER_MS,
    worker: { stalledIntervalMs: e.WORKER_STALLED_INTERVAL_MS, lockDurationMs: e.WORKER_LOCK_DURATION_MS, metricsPort: e.WORKER_METRICS_PORT },
  };
}

/** Sandbox mode points the upstream client at the simulator mounted on our own API. */
export const SANDBOX_PATH = '/sandbox/kling';
