import { Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { POLL_QUEUE, SUBMIT_QUEUE, UPSTREAM_BACKOFF } from '../src/queue/queues';
import { pollTask, type PollTaskDeps } from './poll-task';
import { MAX_RETRY_DELAY_MS, RetryLater } from './retry-backoff';
import { submitTask, type SubmitTaskDeps } from './submit-task';

export interface WorkerOptions {
  connection: Redis;
  prefix: string;
  /** Upstream requests in flight per process (KLING_CONCURRENCY). */
  concurrency: number;
}

export interface RunningWorkers {
  workers: Worker[];
  /** Stops taking jobs and waits for the ones in flight. */
  close(): Promise<void>;
}

export function startWorkers(deps: SubmitTaskDeps & PollTaskDeps, options: WorkerOptions): RunningWorkers {
  const common = { connection: options.connection, prefix: options.prefix, concurrency: options.concurrency };
  const submit = new Worker(SUBMIT_QUEUE, (job: Job) => submitTask(deps, job), {
    ...common,
    settings: {
      backoffStrategy: (_attemptsMade: number, type?: string, error?: Error) =>
        type === UPSTREAM_BACKOFF && error instanceof RetryLater ? error.delayMs : MAX_RETRY_DELAY_MS,
    },
  });
  const poll = new Worker(POLL_QUEUE, (job: Job) => pollTask(deps, job), common);
  const workers = [submit, poll];
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
