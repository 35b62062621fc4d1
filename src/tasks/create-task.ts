import type { Logger } from '../logger';
import type { TaskRecord, TaskRepository } from '../db/task-repository';
import { newTaskId } from '../ids';
import type { Enqueuer } from '../queue/enqueue';
import { toElementFields, type CreateTaskRequest } from './task-request';

export interface CreateTaskDeps {
  tasks: TaskRepository;
  enqueuer: Enqueuer;
  logger: Logger;
}

/**
 * Stores the task, then queues its submit. The row is committed first: if queuing fails (Redis down),
 * the task is still accepted and stays `queued` in Postgres, where the re-queue sweeper finds it.
 */
export async function createTask(deps: CreateTaskDeps, tenantId: string, request: CreateTaskRequest): Promise<TaskRecord> {
  const task = await deps.tasks.insert({
    id: newTaskId(),
    tenantId,
    externalTaskId: request.external_task_id ?? null,
    request: toElementFields(request),
    callbackUrl: request.callback_url ?? null,
  });
  try {
    await deps.enqueuer.enqueueSubmit(task.id);
  } catch (error) {
    deps.logger.warn({ taskId: task.id, err: error }, 'task stored but not queued; it stays queued until re-queued');
    await deps.tasks
      .addEvent(task.id, { type: 'enqueue_failed', status: 'queued', detail: { message: (error as Error).message } })
      .catch(() => undefined);
  }
  return task;
}
