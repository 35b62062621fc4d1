import type { TaskRecord } from '../../db/task-repository';
import type { TaskStatus } from '../../tasks/task-status';

/** Kling's `task_status` names; it has no `queued` or `canceled`. */
export type KlingTaskStatus = 'submitted' | 'processing' | 'succeed' | 'failed';

/**
 * `queued` means accepted and waiting for its turn, which is what Kling's `submitted` says. A canceled
 * task never ran: for a Kling client it failed, with `task_status_msg` saying it was canceled.
 */
export const KLING_STATUS: Record<TaskStatus, KlingTaskStatus> = {
  queued: 'submitted',
  submitted: 'submitted',
  processing: 'processing',
  succeed: 'succeed',
  failed: 'failed',
  canceled: 'failed',
};

/** A task as Kling's query API shows it (NOTES-kling-api.md §2): millisecond timestamps. */
export interface KlingTaskView {
  task_id: string;
  task_status: KlingTaskStatus;
  task_status_msg: string;
  task_info: { external_task_id?: string };
  task_result: unknown;
  created_at: number;
  updated_at: number;
}

/** Kling fills `task_status_msg` only to explain a failure; otherwise it is an empty string. */
function statusMessage(task: TaskRecord): string {
  if (task.status === 'failed') return task.error?.message || task.statusMessage || 'failed';
  if (task.status === 'canceled') return task.statusMessage || 'canceled';
  return task.statusMessage ?? '';
}

export function toKlingTask(task: TaskRecord): KlingTaskView {
  return {
    task_id: task.id,
    task_status: KLING_STATUS[task.status],
    task_status_msg: statusMessage(task),
    // Kling answers `"task_info": {}` for a task created without an external id.
    task_info: task.externalTaskId ? { external_task_id: task.externalTaskId } : {},
    task_result: task.result ?? {},
    created_at: task.createdAt.getTime(),
    updated_at: task.updatedAt.getTime(),
  };
}

export interface KlingSuccess<T> {
  code: 0;
  message: 'SUCCEED';
  request_id: string;
  data: T;
}

export interface KlingFailure {
  code: number;
  message: string;
  request_id: string;
}

export const klingSuccess = <T>(requestId: string, data: T): KlingSuccess<T> => ({ code: 0, message: 'SUCCEED', request_id: requestId, data });
