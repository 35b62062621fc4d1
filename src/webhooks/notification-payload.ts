import type { TaskRecord } from '../db/task-repository';
import { toTaskView } from '../tasks/task-view';

/** What a client's callback_url receives on a status change: the task exactly as GET /v1/tasks/:id shows it. */
export function toNotificationPayload(task: TaskRecord): unknown {
  return toTaskView(task);
}
