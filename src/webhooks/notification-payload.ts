import { toKlingTask } from '../api/kling-compat/kling-envelope';
import type { DeliveryRecord } from '../db/delivery-repository';
import { taskRecordFromState, type TaskRecord } from '../db/task-repository';
import { toTaskView } from '../tasks/task-view';

/**
 * What a client's callback_url receives on a status change: the task exactly as GET /v1/tasks/:id shows
 * it, or, for tasks created on the Kling-compatible surface, the bare task object Kling's callbacks carry.
 */
export function toNotificationPayload(task: TaskRecord): unknown {
  return task.callbackFormat === 'kling' ? toKlingTask(task) : toTaskView(task);
}

/**
 * The body of a stored notification: as rendered at the status change, or rendered now from the task row
 * the change stored (`task_state`) and the task's request, which never changes.
 */
export function notificationBody(delivery: Pick<DeliveryRecord, 'payload' | 'taskState'>, task: Pick<TaskRecord, 'request'>): unknown {
  if (delivery.taskState === null) return delivery.payload;
  return toNotificationPayload(taskRecordFromState(delivery.taskState, task.request));
}
