import type { TaskRecord, TaskRepository } from '../db/task-repository';
import { AppError } from '../errors';
import { LIVE_JOB_STATES, type Enqueuer } from '../queue/enqueue';

export interface RetryTaskDeps {
  tasks: TaskRepository;
  enqueuer: Enqueuer;
}

export interface RetryOutcome {
  task: TaskRecord;
  /** False when the submit job could not be queued now (Redis down): the maintenance sweep queues it later. */
  queued: boolean;
}

/**
 * An operator sends a failed task to Kling again, as a new round (see submission-round.ts): the row moves
 * back to `queued` first — so it is durable whatever Redis does — then its submit job is queued.
 */
export async function retryFailedTask(deps: RetryTaskDeps, taskId: string, by: string): Promise<RetryOutcome> {
  const task = await deps.tasks.retryFailed(taskId, { by });
  if (!task) {
    const current = await deps.tasks.findById(taskId);
    if (!current) throw new AppError('TASK_NOT_FOUND', `No task ${JSON.stringify(taskId)}`);
    throw new AppError('TASK_NOT_RETRYABLE', `Task ${taskId} cannot be retried: its status is "${current.status}"; only a failed task can be`, {
      task_status: current.status,
    });
  }
  try {
    // A job that will still run (it cannot, for a failed task, but a sweep may have just added one) claims
    // the queued task itself; an ended one is replaced.
    if (!LIVE_JOB_STATES.has(await deps.enqueuer.submitJobState(taskId))) await deps.enqueuer.replaceSubmitJob(task);
    return { task, queued: true };
  } catch {
    return { task, queued: false };
  }
}
