import { toKlingTask } from '../api/kling-compat/kling-envelope';
import type { TaskRecord } from '../db/task-repository';
import { toTaskView } from '../tasks/task-view';

/**
 * What a client's callback_url receives on a status change: the task exactly as GET /v1/tasks/:id shows
 * it, or, for tasks created on the Kling-compatible surface, the bare task object Kling's callbacks carry.
 */
export function toNotificationPayload(task: TaskRecord): unknown {
  return task.callbackFormat === 'kling' ? toKlingTask(task) : toTaskView(task);
}
