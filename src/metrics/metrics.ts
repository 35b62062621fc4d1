import type { Queue } from 'bullmq';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { TaskRecord } from '../db/task-repository';
import { isTerminal } from '../tasks/task-status';
import { clusterWideMetrics, type RenderedMetrics } from './cluster-metrics';

/**
 * The service's Prometheus metrics. Each process (API, worker, or both in one) has its own registry and
 * counts what happens in it; Prometheus sums across processes. Labels are small closed sets (statuses,
 * outcomes, Kling codes), never task or tenant ids.
 */

export type CallbackOutcome = 'accepted' | 'duplicate' | 'stale' | 'rejected' | 'error';
export type PollOutcome = 'applied' | 'ignored' | 'not_found' | 'skipped' | 'error';
export type WebhookDeliveryOutcome = 'delivered' | 'retrying' | 'failed';
export type UpstreamOperation = 'create' | 'get';

/**
 * BullMQ job states reported per queue. A job with a priority waits as `prioritized`, not `waiting`: with
 * FAIR_SHARE (the default) every submit job has one, so without that state the submit queue looked empty.
 */
export const QUEUE_STATES = ['waiting', 'prioritized', 'active', 'failed', 'delayed'] as const;

/** Tasks take minutes upstream; the low buckets show tasks that fail fast. */
const TASK_DURATION_BUCKETS_SECONDS = [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400];
const UPSTREAM_DURATION_BUCKETS_SECONDS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60];
/** A full collection of a heap of tens of MB takes tens of ms. */
const IDLE_COLLECTION_BUCKETS_SECONDS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

/** A scrape must not hang on an unreachable Redis (BullMQ's connection queues commands until it is back). */
const QUEUE_COUNT_TIMEOUT_MS = 1_000;

/** Kling's business codes are four digits; our own labels are upper-case words. Anything else is folded. */
export function upstreamCodeLabel(code: string | number): string {
  const text = String(code);
  return /^(0|\d{4}|HTTP_\d{3}|[A-Z_]{1,32})$/.test(text) ? text : 'other';
}

export interface MetricsOptions {
  /** Node.js process metrics (CPU, memory, event loop, GC); on by default. */
  collectDefaults?: boolean;
  /** Queues whose job counts are read from Redis at each scrape. */
  queues?: Queue[];
  /** False while Redis is down: the queue gauges are then left out of the scrape instead of waiting. */
  isRedisReady?: () => boolean;
  /** An API process under the API_PROCESSES supervisor: `render` gives every API process's metrics (cluster-metrics.ts). */
  clusterWide?: boolean;
}

export function createMetrics(options: MetricsOptions = {}) {
  const registry = new Registry();
  if (options.collectDefaults !== false) collectDefaultMetrics({ register: registry });

  const tasksCreated = new Counter({
    name: 'kling_tracker_tasks_created_total',
    help: 'Tasks accepted and stored, by the surface they were created on (v1 or kling)',
    labelNames: ['surface'] as const,
    registers: [registry],
  });
  const tasksFinished = new Counter({
    name: 'kling_tracker_tasks_finished_total',
    help: 'Tasks that reached a terminal status, counted by the process that made the change',
    labelNames: ['status'] as const,
    registers: [registry],
  });
  const taskDuration = new Histogram({
    name: 'kling_tracker_task_duration_seconds',
    help: 'Time from the client submitting a task to it reaching a terminal status',
    labelNames: ['status'] as const,
    buckets: TASK_DURATION_BUCKETS_SECONDS,
    registers: [registry],
  });
  const upstreamRequests = new Histogram({
    name: 'kling_tracker_upstream_request_duration_seconds',
    help: 'Kling API requests by operation and outcome code (0 = success, Kling business code, or TIMEOUT/NETWORK_ERROR/HTTP_nnn/MALFORMED_RESPONSE)',
    labelNames: ['operation', 'code'] as const,
    buckets: UPSTREAM_DURATION_BUCKETS_SECONDS,
    registers: [registry],
  });
  const callbacks = new Counter({
    name: 'kling_tracker_callbacks_received_total',
    help: "Kling's callbacks by outcome: accepted (applied), duplicate, stale (out of order or task finished), rejected (bad token, signature, body or task), error (5xx)",
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const polls = new Counter({
    name: 'kling_tracker_polls_total',
    help: 'Polls of Kling for a task by outcome: applied, ignored (nothing new), not_found, skipped (task already finished), error',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const webhookDeliveries = new Counter({
    name: 'kling_tracker_webhook_deliveries_total',
    help: "Notification attempts to clients' callback_url by outcome: delivered, retrying (failed, will retry), failed (gave up)",
    labelNames: ['outcome'] as const,
    registers: [registry],
  });

  const idleCollections = new Histogram({
    name: 'kling_tracker_idle_collection_seconds',
    help: 'Full garbage collections run once the process went quiet after a busy spell (IDLE_GC_AFTER_MS), by how long each took',
    buckets: IDLE_COLLECTION_BUCKETS_SECONDS,
    registers: [registry],
  });
  let idleCollectionsDue = (): number => 0;
  new Gauge({
    name: 'kling_tracker_idle_collections_due',
    help: 'Idle collections this process has still due: 2 from a busy spell on until both have run or been skipped in the quiet after it (0 with IDLE_GC_AFTER_MS=0)',
    registers: [registry],
    collect() {
      this.set(idleCollectionsDue());
    },
  });

  const queues = options.queues ?? [];
  if (queues.length) {
    new Gauge({
      name: 'kling_tracker_queue_jobs',
      help: 'Jobs per BullMQ queue and state, read from Redis at scrape time (the same in every process)',
      labelNames: ['queue', 'state'] as const,
      registers: [registry],
      // Every API process reads the same counts: aggregated across them, taken once, not added up.
      aggregator: 'max',
      async collect() {
        this.reset();
        if (options.isRedisReady && !options.isRedisReady()) return;
        const counts = await Promise.all(queues.map((queue) => withTimeout(queue.getJobCounts(...QUEUE_STATES), QUEUE_COUNT_TIMEOUT_MS).catch(() => null)));
        queues.forEach((queue, i) => {
          const queueCounts = counts[i];
          if (!queueCounts) return;
          for (const state of QUEUE_STATES) this.set({ queue: queue.name, state }, queueCounts[state] ?? 0);
        });
      },
    });
  }

  const renderClusterWide = options.clusterWide ? clusterWideMetrics(registry) : undefined;

  return {
    registry,
    /** Repository hook: a task row was inserted. */
    taskCreated(task: Pick<TaskRecord, 'callbackFormat'>): void {
      tasksCreated.inc({ surface: task.callbackFormat === 'kling' ? 'kling' : 'v1' });
    },
    /** Repository hook: a status change committed; terminal ones are counted and timed. */
    taskStatusChanged(task: Pick<TaskRecord, 'status' | 'createdAt' | 'completedAt'>): void {
      if (!isTerminal(task.status)) return;
      tasksFinished.inc({ status: task.status });
      const finishedAt = task.completedAt ?? new Date();
      taskDuration.observe({ status: task.status }, Math.max(0, (finishedAt.getTime() - task.createdAt.getTime()) / 1000));
    },
    upstreamRequest(operation: UpstreamOperation, code: string | number, durationSeconds: number): void {
      upstreamRequests.observe({ operation, code: upstreamCodeLabel(code) }, durationSeconds);
    },
    callbackReceived(outcome: CallbackOutcome): void {
      callbacks.inc({ outcome });
    },
    polled(outcome: PollOutcome): void {
      polls.inc({ outcome });
    },
    webhookDelivery(outcome: WebhookDeliveryOutcome): void {
      webhookDeliveries.inc({ outcome });
    },
    /** Idle-memory hook: a full collection ran in a quiet spell. */
    idleCollection(durationSeconds: number): void {
      idleCollections.observe(durationSeconds);
    },
    /** Where `kling_tracker_idle_collections_due` is read from at each scrape (idle-memory.ts). */
    watchIdleCollections(due: () => number): void {
      idleCollectionsDue = due;
    },
    /** The Prometheus text exposition of this process's registry (with `clusterWide`, of every API process's). */
    async render(): Promise<RenderedMetrics> {
      if (renderClusterWide) return renderClusterWide();
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
