import { AppError, taskNotFound } from '../errors';
import type { TaskRecord, TaskRepository } from '../db/task-repository';

/**
 * Only a task Kling has not seen can be canceled: `queued`, and no submit in flight (once the create
 * request is on the wire, Kling may already have the task).
 */
export async function cancelTask(tasks: TaskRepository, tenantId: string, taskId: string): Promise<TaskRecord> {
  const canceled = await tasks.transition(
    taskId,
    'canceled',
    { completedAt: new Date(), statusMessage: 'canceled by client' },
    { type: 'canceled', detail: { by: 'client' } },
    { tenantId, status: 'queued', submitInFlight: false },
  );
  if (canceled) return canceled;
  const task = await tasks.findForTenant(tenantId, taskId);
  if (!task) throw taskNotFound(taskId);
  const reason = task.status === 'queued' ? 'its submission to Kling is in progress' : `its status is "${task.status}"`;
  throw new AppError('TASK_NOT_CANCELABLE', `Task ${taskId} cannot be canceled: ${reason}`, { task_status: task.status });
}
