import type { Queue } from 'bullmq';
import { createBatcher } from '../batcher';
import type { TaskQueues } from './queues';
import type { FairShare } from './fair-share';
import { notifyJobId, UPSTREAM_BACKOFF } from './queues';

/** Long enough for a healthy Redis, short enough that an outage does not hold the client's request. */
const ENQUEUE_TIMEOUT_MS = 2_000;

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A submit job in one of these states will still run its task; any other state (or none) means it will not. */
export const LIVE_JOB_STATES: ReadonlySet<string> = new Set(['waiting', 'active', 'delayed', 'prioritized', 'waiting-children']);

/** A job's state in its queue, `missing` when BullMQ knows no such job (its `unknown`). */
export async function jobStateOrMissing(queue: Queue, jobId: string): Promise<string> {
  const state = await queue.getJobState(jobId);
  return state === 'unknown' ? 'missing' : state;
}

/** What queuing a submit needs to know of the task. */
export interface SubmitTarget {
  id: string;
  tenantId: string;
}

export interface EnqueuerOptions {
  maxAttempts: number;
  /** Orders submit jobs round-robin between tenants (see fair-share.ts); absent: first come, first served. */
  fairShare?: FairShare;
  /** False while Redis is unreachable: adds then fail at once instead of piling up in the client. */
  isConnected?: () => boolean;
}

/** Concurrent submit jobs queued together: up to this many per round trip, two round trips out at once. */
const SUBMIT_BATCH_MAX = 100;
const SUBMIT_BATCHES_IN_FLIGHT = 2;
/**
 * Submits queued at least this close together (ms) wait this long for company when no batch is out (see
 * batcher.ts). They are queued after the create is answered, so no client waits for it, and a task is
 * minutes at Kling.
 */
const SUBMIT_LINGER_MS = 5;

export function createEnqueuer(queues: TaskQueues, options: EnqueuerOptions) {
  function requireConnection(): void {
    if (options.isConnected && !options.isConnected()) throw new Error('Redis is not connected');
  }

  const submitJob = (task: SubmitTarget, priority: number | undefined) => ({
    name: 'submit',
    data: { taskId: task.id, tenantId: task.tenantId },
    opts: {
      jobId: task.id,
      ...(priority ? { priority } : {}),
      // One more than our own attempt cap: the processor decides when to give up (it counts
      // attempts in Postgres, across stalls and restarts); BullMQ's cap is only a backstop.
      attempts: options.maxAttempts + 1,
      backoff: { type: UPSTREAM_BACKOFF },
      // Redis keeps a bounded number of finished jobs; Postgres keeps the history.
      removeOnComplete: { age: 24 * 3600, count: 10_000 },
      removeOnFail: { age: 7 * 24 * 3600, count: 10_000 },
    },
  });

  /** The tasks' priorities: their fair-share places (none without fair share). */
  const fairSharePlaces = async (tasks: SubmitTarget[]): Promise<number[] | undefined> =>
    options.fairShare
      ? withTimeout(options.fairShare.admitMany(tasks.map((task) => task.tenantId)), ENQUEUE_TIMEOUT_MS, 'Taking fair-share places')
      : undefined;

  /** Takes the tasks' fair-share places and adds their jobs in one pipeline (addBulk). */
  const queueSubmits = async (tasks: SubmitTarget[]): Promise<void[]> => {
    const priorities = await fairSharePlaces(tasks);
    await withTimeout(queues.submit.addBulk(tasks.map((task, index) => submitJob(task, priorities?.[index]))), ENQUEUE_TIMEOUT_MS, 'Queueing submit jobs');
    return tasks.map(() => undefined);
  };

  /**
   * One task alone: a plain add, not addBulk's pipeline of one. An ioredis pipeline copies every loaded
   * script command onto itself when it is built (BullMQ loads dozens), which cost a lone add about twice
   * the CPU of the add itself; at a steady trickle of creates nearly every batch is a batch of one.
   */
  const queueSubmit = async (task: SubmitTarget): Promise<void> => {
    const job = submitJob(task, (await fairSharePlaces([task]))?.[0]);
    await withTimeout(queues.submit.add(job.name, job.data, job.opts), ENQUEUE_TIMEOUT_MS, 'Queueing a submit job');
  };

  const submitBatched = createBatcher<SubmitTarget, void>({
    one: queueSubmit,
    many: queueSubmits,
    maxBatch: SUBMIT_BATCH_MAX,
    maxInFlight: SUBMIT_BATCHES_IN_FLIGHT,
    lingerMs: SUBMIT_LINGER_MS,
  });
  /** Submits being queued after their create was answered (see `queueSubmitAfterAnswer`). */
  const queuingAfterAnswer = new Set<Promise<void>>();

  return {
    /**
     * Queues the upstream submit of a task whose row is committed, without its create waiting for it:
     * the row is what makes the task durable (if this fails, it stays `queued` in Postgres and the
     * maintenance sweep queues it again), so the answer need not wait for Redis too. `onFailure` records
     * why it failed. The promise settles (never rejects) once the job is queued or the failure recorded;
     * `drain` waits for all of them on shutdown.
     */
    queueSubmitAfterAnswer(task: SubmitTarget, onFailure: (error: Error) => Promise<void>): Promise<void> {
      const queuing: Promise<void> = this.enqueueSubmit(task)
        .catch((error: Error) => onFailure(error))
        .catch(() => undefined)
        .finally(() => queuingAfterAnswer.delete(queuing));
      queuingAfterAnswer.add(queuing);
      return queuing;
    },

    /** Waits for the submits still being queued after their answers (before Redis and Postgres close). */
    async drain(): Promise<void> {
      await Promise.all([...queuingAfterAnswer]);
    },

    /**
     * Queues the upstream submit. The job id is the task id, so adding it again while the job exists is a
     * no-op: re-queuing a stuck task can never create a second submit job. Concurrent calls share one
     * Redis round trip (see batcher.ts).
     */
    async enqueueSubmit(task: SubmitTarget): Promise<void> {
      requireConnection();
      await submitBatched(task);
    },

    /** A worker took one of the tenant's submit jobs for the first time (see fair-share.ts). */
    async releaseFairShare(tenantId: string): Promise<void> {
      await options.fairShare?.release(tenantId);
    },

    /**
     * The state of the task's submit job (`missing` when there is none). One script call, without reading
     * the job itself; calls made together share the connection's round trips (the sweep checks a batch).
     */
    async submitJobState(taskId: string): Promise<string> {
      requireConnection();
      return jobStateOrMissing(queues.submit, taskId);
    },

    /**
     * Queues the submit again for a task whose job has ended (completed, failed) or vanished: the old job
     * is removed first, since its id would make a plain add a no-op. Only for a job not in LIVE_JOB_STATES.
     */
    async replaceSubmitJob(task: SubmitTarget): Promise<void> {
      requireConnection();
      await queues.submit.remove(task.id).catch(() => undefined);
      await this.enqueueSubmit(task);
    },

    /**
     * Asks a worker to deliver the task's pending notifications. One job per task keeps them in order;
     * while one exists, adding another is a no-op (the running one picks up new deliveries too).
     */
    async enqueueNotify(taskId: string): Promise<void> {
      requireConnection();
      await withTimeout(
        queues.notify.add(
          'notify',
          { taskId },
          {
            jobId: notifyJobId(taskId),
            // The processor counts attempts per delivery and gives up by its own schedule.
            attempts: 1_000,
            backoff: { type: UPSTREAM_BACKOFF },
            removeOnComplete: true,
            removeOnFail: { age: 7 * 24 * 3600, count: 10_000 },
          },
        ),
        ENQUEUE_TIMEOUT_MS,
        'Queueing a notification',
      );
    },

    /** Asks a worker to read the task from Kling now (result missing from a callback, or no news for too long). */
    async enqueuePoll(taskId: string, reason: string): Promise<void> {
      requireConnection();
      await withTimeout(
        queues.poll.add(
          'poll',
          { taskId },
          {
            // One pending poll per task; removed on completion so a later poll can be queued again.
            jobId: `poll_${taskId}`,
            attempts: 5,
            backoff: { type: 'exponential', delay: 1_000 },
            removeOnComplete: true,
            removeOnFail: { age: 24 * 3600, count: 10_000 },
          },
        ),
        ENQUEUE_TIMEOUT_MS,
        `Queueing a poll (${reason})`,
      );
    },
  };
}

export type Enqueuer = ReturnType<typeof createEnqueuer>;
