import type { TaskRecord } from '../db/task-repository';

/** The task as clients see it (CONTRACT.md "Client API"): snake_case, ISO timestamps. */
export interface TaskView {
  task_id: string;
  external_task_id: string | null;
  status: string;
  status_message: string | null;
  upstream_task_id: string | null;
  request: Record<string, unknown>;
  result: unknown;
  error: { code: string; message: string } | null;
  attempts: number;
  created_at: string;
  updated_at: string;
  submitted_at: string | null;
  completed_at: string | null;
}

export function toTaskView(task: TaskRecord): TaskView {
  return {
    task_id: task.id,
    external_task_id: task.externalTaskId,
    status: task.status,
    status_message: task.statusMessage,
    upstream_task_id: task.upstreamTaskId,
    request: {
      ...task.request,
      ...(task.callbackUrl ? { callback_url: task.callbackUrl } : {}),
      ...(task.externalTaskId ? { external_task_id: task.externalTaskId } : {}),
    },
    result: task.result ?? null,
    error: task.error,
    attempts: task.attempts,
    created_at: task.createdAt.toISOString(),
    updated_at: task.updatedAt.toISOString(),
    submitted_at: task.submittedAt?.toISOString() ?? null,
    completed_at: task.completedAt?.toISOString() ?? null,
  };
}
