import type { Job } from 'bullmq';
import type { TaskRepository } from '../src/db/task-repository';
import type { Logger } from '../src/logger';
import type { Enqueuer } from '../src/queue/enqueue';
import { taskJobSchema } from '../src/queue/queues';
import { applyUpstreamUpdate } from '../src/tasks/apply-upstream-update';
import { upstreamExternalId } from '../src/tasks/submission-round';
import { isTerminal } from '../src/tasks/task-status';
import type { KlingClient } from '../src/upstream/kling-client';
import type { PollOutcome } from '../src/metrics/metrics';

export interface PollTaskDeps {
  tasks: TaskRepository;
  enqueuer: Enqueuer;
  kling: KlingClient;
  logger: Logger;
}

/**
 * Reads one task from Kling and applies the answer exactly as a callback would be applied. Returns what
 * came of it (for metrics); failures throw and are retried.
 */
export async function pollTask(deps: PollTaskDeps, job: Job): Promise<Exclude<PollOutcome, 'error'>> {
  const { taskId } = taskJobSchema.parse(job.data);
  const task = await deps.tasks.findById(taskId);
  if (!task || isTerminal(task.status) || task.status === 'queued') return 'skipped';
  // Kling accepts its own id or our external_task_id (the task id, plus the round after a retry), so even
  // a task whose upstream id was never stored can be read.
  const snapshot = await deps.kling.getElementTask(task.upstreamTaskId ?? upstreamExternalId(task));
  if (!snapshot) {
    await deps.tasks.addEvent(taskId, { type: 'poll', status: task.status, detail: { applied: false, reason: 'Kling does not know the task' } });
    return 'not_found';
  }
  const { outcome } = await applyUpstreamUpdate(deps, task, snapshot, 'poll');
  deps.logger.info({ taskId, upstreamStatus: snapshot.task_status, outcome }, 'polled Kling');
  return outcome === 'applied' ? 'applied' : 'ignored';
}
