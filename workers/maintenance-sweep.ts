import type { Queue } from 'bullmq';
import type { TaskRepository } from '../src/db/task-repository';
import type { Logger } from '../src/logger';
import type { Enqueuer } from '../src/queue/enqueue';
import type { TaskJob } from '../src/queue/queues';

/** Rows handled per sweep and kind; a backlog is worked off over successive sweeps. */
const SWEEP_BATCH = 200;

export interface MaintenanceSweepDeps {
  tasks: TaskRepository;
  enqueuer: Enqueuer;
  submitQueue: Queue<TaskJob>;
  logger: Logger;
  requeueAfterMs: number;
  pollIntervalMs: number;
  taskTimeoutMs: number;
}

export interface SweepReport {
  requeued: number;
  polled: number;
  timedOut: number;
}

/**
 * Postgres is the truth and Redis may forget: this sweep makes every task move again whatever was lost.
 * - `queued` tasks with no live submit job (Redis was down at submit, lost its data, a process died
 *   between commit and add) are queued again;
 * - tasks Kling has said nothing about for KLING_POLL_INTERVAL_MS are polled;
 * - tasks Kling has held longer than KLING_TASK_TIMEOUT_MS fail with UPSTREAM_TIMEOUT.
 */
export async function runMaintenanceSweep(deps: MaintenanceSweepDeps, now = new Date()): Promise<SweepReport> {
  const requeued = await requeueLostTasks(deps, now);
  const timedOut = await failOverdueTasks(deps, now);
  const polled = await pollQuietTasks(deps, now);
  if (requeued || polled || timedOut) deps.logger.info({ requeued, polled, timedOut }, 'maintenance sweep');
  return { requeued, polled, timedOut };
}

/** A job in one of these states will still run the task; anything else means it is lost. */
const LIVE_JOB_STATES = new Set(['waiting', 'active', 'delayed', 'prioritized', 'waiting-children']);

async function requeueLostTasks(deps: MaintenanceSweepDeps, now: Date): Promise<number> {
  const stale = await deps.tasks.findQueuedUntouchedSince(new Date(now.getTime() - deps.requeueAfterMs), SWEEP_BATCH);
  let requeued = 0;
  for (const task of stale) {
    const job = await deps.submitQueue.getJob(task.id);
    const state = job ? await job.getState() : 'missing';
    if (LIVE_JOB_STATES.has(state)) continue;
    // The job is finished or gone, so no worker holds this task: a leftover in-flight mark (a worker
    // killed mid-request) would only block cancel. The next attempt looks Kling up before re-sending.
    await job?.remove().catch(() => undefined);
    await deps.tasks.update(task.id, { submitInFlight: false });
    await deps.enqueuer.enqueueSubmit(task.id);
    await deps.tasks.addEvent(task.id, { type: 'requeued', status: 'queued', detail: { previous_job_state: state } });
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
