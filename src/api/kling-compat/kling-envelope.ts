import { z } from 'zod';
import type { TaskRecord } from '../../db/task-repository';
import type { TaskStatus } from '../../tasks/task-status';

/** Kling's `task_status` names; it has no `queued` or `canceled`. */
export const KLING_TASK_STATUSES = ['submitted', 'processing', 'succeed', 'failed'] as const;
export type KlingTaskStatus = (typeof KLING_TASK_STATUSES)[number];

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
export const klingTaskViewSchema = z
  .object({
    task_id: z.string().meta({ description: 'Our task id' }),
    task_status: z.enum(KLING_TASK_STATUSES),
    task_status_msg: z.string().meta({ description: 'Empty unless the task failed (or was canceled)' }),
    task_info: z.object({ external_task_id: z.string().optional() }),
    task_result: z.unknown().meta({ description: '`{ elements: [...] }` once succeeded, `{}` before' }),
    created_at: z.int().meta({ description: 'Unix time in milliseconds' }),
    updated_at: z.int().meta({ description: 'Unix time in milliseconds' }),
  })
  .meta({ title: 'KlingTask' });

export type KlingTaskView = z.infer<typeof klingTaskViewSchema>;

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

/** Kling's success envelope around `data`. */
export const klingSuccessSchema = <T extends z.ZodType>(data: T) =>
  z.object({ code: z.literal(0), message: z.literal('SUCCEED'), request_id: z.string().meta({ description: 'Also the X-Request-Id of the answer' }), data });

export interface KlingSuccess<T> {
  code: 0;
  message: 'SUCCEED';
  request_id: string;
  data: T;
}

/** Kling's error envelope: a business code (1001, 1201, 5001…) and a message. */
export const klingFailureSchema = z
  .object({ code: z.int().meta({ description: "Kling's business code" }), message: z.string(), request_id: z.string() })
  .meta({ title: 'KlingError' });

export type KlingFailure = z.infer<typeof klingFailureSchema>;

export const klingSuccess = <T>(requestId: string, data: T): KlingSuccess<T> => ({ code: 0, message: 'SUCCEED', request_id: requestId, data });
