import { Worker, type Job, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { MAINTENANCE_QUEUE, POLL_QUEUE, SUBMIT_QUEUE, UPSTREAM_BACKOFF } from '../src/queue/queues';
import { runMaintenanceSweep, type MaintenanceSweepDeps } from './maintenance-sweep';
import { pollTask, type PollTaskDeps } from './poll-task';
import { MAX_RETRY_DELAY_MS, RetryLater } from './retry-backoff';
import { submitTask, type SubmitTaskDeps } from './submit-task';

export interface WorkerOptions {
  connection: Redis;
  prefix: string;
  /** Upstream requests in flight per process (KLING_CONCURRENCY). */
  concurrency: number;
  maintenanceQueue: Queue;
  sweepIntervalMs: number;
}

export interface RunningWorkers {
  workers: Worker[];
  /** Stops taking jobs and waits for the ones in flight. */
  close(): Promise<void>;
}

const SWEEP_SCHEDULER_ID = 'maintenance-sweep';

export async function startWorkers(deps: SubmitTaskDeps & PollTaskDeps & MaintenanceSweepDeps, options: WorkerOptions): Promise<RunningWorkers> {
  const common = { connection: options.connection, prefix: options.prefix, concurrency: options.concurrency };
  const submit = new Worker(SUBMIT_QUEUE, (job: Job) => submitTask(deps, job), {
    ...common,
    settings: {
      backoffStrategy: (_attemptsMade: number, type?: string, error?: Error) =>
        type === UPSTREAM_BACKOFF && error instanceof RetryLater ? error.delayMs : MAX_RETRY_DELAY_MS,
    },
  });
  const poll = new Worker(POLL_QUEUE, (job: Job) => pollTask(deps, job), common);
  // The scheduler emits one sweep job per interval whatever the number of worker processes, and each
  // process runs at most one at a time: the sweep never runs twice concurrently on one task list.
  const maintenance = new Worker(MAINTENANCE_QUEUE, () => runMaintenanceSweep(deps), { ...common, concurrency: 1 });
  await options.maintenanceQueue.upsertJobScheduler(
    SWEEP_SCHEDULER_ID,
    { every: options.sweepIntervalMs },
    { name: 'sweep', opts: { removeOnComplete: true, removeOnFail: 50 } },
  );
  const workers = [submit, poll, maintenance];
  for (const worker of workers) {
    worker.on('failed', (job, error) => {
      if (!(error instanceof RetryLater)) deps.logger.warn({ taskId: job?.data?.taskId, queue: worker.name, err: error }, 'job failed');
    });
    worker.on('error', (error) => deps.logger.error({ queue: worker.name, err: error }, 'worker error'));
  }
  return {
    workers,
    async close() {
      await Promise.all(workers.map((worker) => worker.close()));
    },
  };
}
