import { Worker, type Job, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Metrics } from '../src/metrics/metrics';
import { bullPrefix, MAINTENANCE_QUEUE, NOTIFY_QUEUE, POLL_QUEUE, SUBMIT_QUEUE, UPSTREAM_BACKOFF } from '../src/queue/queues';
import { runMaintenanceSweep, type MaintenanceSweepDeps } from './maintenance-sweep';
import { notifyAgainIfPending, notifyClient, type NotifyClientDeps } from './notify-client';
import { pollTask, type PollTaskDeps } from './poll-task';
import { RetryLater, retryDelayMs } from './retry-backoff';
import { submitTask, type SubmitTaskDeps } from './submit-task';

export interface WorkerOptions {
  connection: Redis;
  queuePrefix: string;
  /** Jobs in progress per queue and process; upstream requests are capped separately by the Kling client. */
  concurrency: number;
  /** Notify jobs in progress per process (NOTIFY_CONCURRENCY): they wait on clients' receivers, not on Kling. */
  notifyConcurrency: number;
  /** Creates sent to Kling per window, across all worker processes (BullMQ's global queue limiter). */
  rateLimit: { max: number; durationMs: number };
  stalledIntervalMs: number;
  lockDurationMs: number;
  maintenanceQueue: Queue;
  sweepIntervalMs: number;
  retryBaseDelayMs: number;
}

export interface RunningWorkers {
  workers: Worker[];
  /** Stops taking jobs and waits for the ones in flight. */
  close(): Promise<void>;
}

const SWEEP_SCHEDULER_ID = 'maintenance-sweep';

type Deps = Omit<SubmitTaskDeps, 'pauseSubmissions'> & PollTaskDeps & MaintenanceSweepDeps & NotifyClientDeps & { metrics?: Metrics };

export async function startWorkers(deps: Deps, options: WorkerOptions): Promise<RunningWorkers> {
  const common = {
    connection: options.connection,
    prefix: bullPrefix(options.queuePrefix),
    concurrency: options.concurrency,
    stalledInterval: options.stalledIntervalMs,
    lockDuration: options.lockDurationMs,
  };
  // The processor records the delay it chose in the task's events; other failures (Postgres down
  // mid-job) back off exponentially from the same base.
  const backoffStrategy = (attemptsMade: number, type?: string, error?: Error) =>
    type === UPSTREAM_BACKOFF && error instanceof RetryLater ? error.delayMs : retryDelayMs(attemptsMade, options.retryBaseDelayMs, error);
  const submit: Worker = new Worker(SUBMIT_QUEUE, (job: Job, token?: string) => submitTask({ ...deps, pauseSubmissions: (ms) => submit.rateLimit(ms) }, job, token), {
    ...common,
    limiter: { max: options.rateLimit.max, duration: options.rateLimit.durationMs },
    settings: { backoffStrategy },
  });
  const poll = new Worker(
    POLL_QUEUE,
    async (job: Job) => {
      const outcome = await pollTask(deps, job).catch((error: unknown) => {
        deps.metrics?.polled('error');
        throw error;
      });
      deps.metrics?.polled(outcome);
    },
    { ...common, settings: { backoffStrategy } },
  );
  const notify = new Worker(NOTIFY_QUEUE, (job: Job) => notifyClient(deps, job), { ...common, concurrency: options.notifyConcurrency, settings: { backoffStrategy } });
  notify.on('completed', (job) => {
    // If this fails (Postgres or Redis away), the sweep re-queues the notification after NOTIFY_REQUEUE_AFTER_MS.
    notifyAgainIfPending(deps, job).catch((error) => deps.logger.warn({ taskId: job.data?.taskId, err: error }, 'could not check for notifications stored as the job ended'));
  });
  // The scheduler emits one sweep job per interval whatever the number of worker processes, and each
  // process runs at most one at a time: the sweep never runs twice concurrently on one task list.
  const maintenance = new Worker(MAINTENANCE_QUEUE, () => runMaintenanceSweep(deps), { ...common, concurrency: 1 });
  const scheduleSweep = () =>
    options.maintenanceQueue.upsertJobScheduler(
      SWEEP_SCHEDULER_ID,
      { every: options.sweepIntervalMs },
      { name: 'sweep', opts: { removeOnComplete: true, removeOnFail: 50 } },
    );
  await scheduleSweep();
  // Redis may come back empty (restarted without persistence, failed over): the scheduler must come back
  // too, or nothing would re-queue the tasks whose jobs were lost. Upserting an existing scheduler keeps
  // its next run.
  const onReconnect = () => void scheduleSweep().catch((error) => deps.logger.warn({ err: error }, 'could not restore the sweep scheduler'));
  options.connection.on('ready', onReconnect);
  const workers = [submit, poll, notify, maintenance];
  for (const worker of workers) {
    worker.on('failed', (job, error) => {
      if (!(error instanceof RetryLater) && error?.name !== 'RateLimitError') deps.logger.warn({ taskId: job?.data?.taskId, queue: worker.name, err: error }, 'job failed');
    });
    worker.on('error', (error) => deps.logger.error({ queue: worker.name, err: error }, 'worker error'));
  }
  return {
    workers,
    async close() {
      options.connection.off('ready', onReconnect);
      await Promise.all(workers.map((worker) => worker.close()));
    },
  };
}
