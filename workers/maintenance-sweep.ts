import type { Queue } from 'bullmq';
import type { DeliveryRepository } from '../src/db/delivery-repository';
import type { IdempotencyRepository } from '../src/db/idempotency-repository';
import type { TaskRepository } from '../src/db/task-repository';
import type { Logger } from '../src/logger';
import { jobStateOrMissing, LIVE_JOB_STATES, type Enqueuer } from '../src/queue/enqueue';
import { notifyJobId, type TaskJob } from '../src/queue/queues';

/** Rows handled per sweep and kind; a backlog is worked off over successive sweeps. */
const SWEEP_BATCH = 200;

export interface MaintenanceSweepDeps {
  tasks: TaskRepository;
  enqueuer: Enqueuer;
  notifyQueue: Queue<TaskJob>;
  deliveries: DeliveryRepository;
  idempotency: IdempotencyRepository;
  logger: Logger;
  requeueAfterMs: number;
  /** NOTIFY_REQUEUE_AFTER_MS */
  notifyRequeueAfterMs: number;
  pollIntervalMs: number;
  taskTimeoutMs: number;
  /** Finished tasks older than this are purged (undefined: kept forever). */
  retentionMs?: number;
}

export interface SweepReport {
  requeued: number;
  polled: number;
  timedOut: number;
  notificationsRequeued: number;
  idempotencyKeysPurged: number;
  tasksPurged: number;
}

/**
 * Postgres is the truth and Redis may forget: this sweep makes every task move again whatever was lost.
 * - `queued` tasks with no live submit job (Redis was down at submit, lost its data, a process died
 *   between commit and add) are queued again;
 * - tasks Kling has said nothing about for KLING_POLL_INTERVAL_MS are polled;
 * - tasks Kling has held longer than KLING_TASK_TIMEOUT_MS fail with UPSTREAM_TIMEOUT;
 * - client notifications waiting without a live job are queued again;
 * - Idempotency-Keys older than 24 h are forgotten.
 */
export async function runMaintenanceSweep(deps: MaintenanceSweepDeps, now = new Date()): Promise<SweepReport> {
  const requeued = await requeueLostTasks(deps, now);
  const timedOut = await failOverdueTasks(deps, now);
  const polled = await pollQuietTasks(deps, now);
  const notificationsRequeued = await requeueLostNotifications(deps, now);
  const idempotencyKeysPurged = await deps.idempotency.purgeExpired();
  const tasksPurged = await purgeExpiredTasks(deps, now);
  const report = { requeued, polled, timedOut, notificationsRequeued, idempotencyKeysPurged, tasksPurged };
  if (Object.values(report).some(Boolean)) deps.logger.info(report, 'maintenance sweep');
  return report;
}

async function requeueLostTasks(deps: MaintenanceSweepDeps, now: Date): Promise<number> {
  const stale = await deps.tasks.findQueuedUntouchedSince(new Date(now.getTime() - deps.requeueAfterMs), SWEEP_BATCH);
  // Asked all at once: while a backlog waits, every sweep checks a full batch, and nearly all are live.
  const checked = await Promise.all(stale.map(async (task) => ({ task, state: await deps.enqueuer.submitJobState(task.id) })));
  let requeued = 0;
  for (const { task, state } of checked) {
    if (LIVE_JOB_STATES.has(state)) continue;
    // The job may have finished *because* a worker just moved the task on: act only if the row is still
    // exactly as read (queued, untouched). Then no worker holds the task, and a leftover in-flight mark
    // (a worker killed mid-request) would only block cancel. The next attempt looks Kling up first.
    const stillLost = await deps.tasks.update(task.id, { submitInFlight: false }, { status: 'queued', updatedAt: task.updatedAt });
    if (!stillLost) continue;
    await deps.enqueuer.replaceSubmitJob(task);
    await deps.tasks.addEvent(task.id, { type: 'requeued', status: 'queued', detail: { previous_job_state: state } });
    requeued++;
  }
  return requeued;
}

async function requeueLostNotifications(deps: MaintenanceSweepDeps, now: Date): Promise<number> {
  const taskIds = await deps.deliveries.tasksWithPendingSince(new Date(now.getTime() - deps.notifyRequeueAfterMs), SWEEP_BATCH);
  const checked = await Promise.all(taskIds.map(async (taskId) => ({ taskId, state: await jobStateOrMissing(deps.notifyQueue, notifyJobId(taskId)) })));
  let requeued = 0;
  for (const { taskId, state } of checked) {
    if (LIVE_JOB_STATES.has(state)) continue;
    // An ended job keeps its id taken: adding again would be a no-op until it is gone.
    await deps.notifyQueue.remove(notifyJobId(taskId)).catch(() => undefined);
    await deps.enqueuer.enqueueNotify(taskId);
    requeued++;
  }
  return requeued;
}

async function pollQuietTasks(deps: MaintenanceSweepDeps, now: Date): Promise<number> {
  const quiet = await deps.tasks.findUpstreamQuietSince(new Date(now.getTime() - deps.pollIntervalMs), SWEEP_BATCH);
  for (const task of quiet) await deps.enqueuer.enqueuePoll(task.id, 'no news from Kling');
  return quiet.length;
}

async function failOverdueTasks(deps: MaintenanceSweepDeps, now: Date): Promise<number> {
  const overdue = await deps.tasks.findSubmittedBefore(new Date(now.getTime() - deps.taskTimeoutMs), SWEEP_BATCH);
  let failed = 0;
  for (const task of overdue) {
    const hours = (deps.taskTimeoutMs / 3_600_000).toFixed(1).replace(/\.0$/, '');
    const message = `Kling did not finish the task within ${hours} h of accepting it`;
    const updated = await deps.tasks.transition(
      task.id,
      'failed',
      { error: { code: 'UPSTREAM_TIMEOUT', message }, statusMessage: message, completedAt: now },
      { type: 'timed_out', detail: { submitted_at: task.submittedAt?.toISOString() ?? null, timeout_ms: deps.taskTimeoutMs } },
    );
    if (updated) failed++;
  }
  return failed;
}

/** Rows per purge statement, and statements per sweep: a large expired backlog goes over several sweeps. */
const PURGE_BATCH = 500;
const PURGE_BATCHES_PER_SWEEP = 10;

/** Retention: finished tasks (with their events) older than RETENTION_DAYS, in small batches. */
async function purgeExpiredTasks(deps: MaintenanceSweepDeps, now: Date): Promise<number> {
  if (deps.retentionMs === undefined) return 0;
  const before = new Date(now.getTime() - deps.retentionMs);
  let purged = 0;
  for (let batch = 0; batch < PURGE_BATCHES_PER_SWEEP; batch++) {
    const deleted = await deps.tasks.purgeFinishedBefore(before, PURGE_BATCH);
    purged += deleted;
    if (deleted < PURGE_BATCH) break;
  }
  return purged;
}
