import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { TaskRecord } from '../db/task-repository';
import { isImageUrl } from '../media/image-rules';
import { TASK_STATUSES, type TaskStatus } from './task-status';

const timestamp = z.iso.datetime();

/**
 * The task as clients see it (CONTRACT.md "Client API"): snake_case, ISO timestamps. The schema is the
 * type (`TaskView`) and the OpenAPI description of every answer that carries a task.
 */
export const taskViewSchema = z
  .object({
    task_id: z.string().meta({ description: 'Our task id', example: 'tsk_01KB2Z6Q3W4E5R6T7Y8U9I0P1A' }),
    external_task_id: z.string().nullable().meta({ description: 'Your own id, unique per tenant' }),
    status: z.enum(TASK_STATUSES).meta({ description: 'Moves only forward: queued → submitted → processing → succeed | failed (or queued → canceled)' }),
    status_message: z.string().nullable(),
    upstream_task_id: z.string().nullable().meta({ description: "Kling's task id, once Kling accepted the task" }),
    request: z.record(z.string(), z.unknown()).meta({ description: 'The create request as stored; base64 images are shown as their size and digest' }),
    result: z.unknown().meta({ description: 'Kling\'s `task_result` (`{ elements: [...] }`) once the task succeeded, else null' }),
    error: z
      .object({ code: z.string(), message: z.string() })
      .nullable()
      .meta({
        description:
          'Why the task failed (or the last submit error while it is retried). Codes: Kling\'s business code (e.g. "1201"), `UPSTREAM_TASK_FAILED` (Kling failed the task), `UPSTREAM_TIMEOUT` (Kling held it past KLING_TASK_TIMEOUT_MS), `media_invalid` (a medium breaks Kling\'s rules: the message names the field and the rule), `media_unavailable` (a medium could not be read), or a transport label such as `NETWORK_ERROR` or `HTTP_502`',
      }),
    attempts: z.int().meta({ description: 'Submit attempts so far' }),
    created_at: timestamp,
    updated_at: timestamp,
    submitted_at: timestamp.nullable(),
    completed_at: timestamp.nullable(),
    queue_position: z
      .object({
        tenant: z.int().meta({ description: "Your queued tasks that go to Kling before this one" }),
        all: z.int().meta({ description: 'All queued tasks that go before it (tenants take turns when FAIR_SHARE is on)' }),
        per_second: z.number().nullable().meta({ description: 'Tasks sent to Kling per second over the last 5 minutes' }),
        estimated_start_at: timestamp.nullable().meta({ description: 'When its turn should come at that pace (null: no recent pace)' }),
      })
      .optional()
      .meta({ description: 'Only on a single queued task (GET by id or external id): an estimate' }),
  })
  .meta({ title: 'Task' });

export type TaskView = z.infer<typeof taskViewSchema>;

/** One entry of a task's timeline (`GET /v1/tasks/:id/events`). */
export const taskEventViewSchema = z
  .object({
    at: timestamp,
    type: z.string().meta({ description: 'created, submitted, callback, poll, submit_retry, submit_failed, notification, canceled, …' }),
    status: z.enum(TASK_STATUSES).nullable().meta({ description: 'The task status after the event' }),
    detail: z.record(z.string(), z.unknown()).nullable(),
  })
  .meta({ title: 'TaskEvent' });

export type TaskEventView = z.infer<typeof taskEventViewSchema>;

export function toTaskEventView(event: { at: Date; type: string; status: TaskStatus | null; detail: unknown }): TaskEventView {
  return { at: event.at.toISOString(), type: event.type, status: event.status, detail: (event.detail ?? null) as TaskEventView['detail'] };
}

/**
 * A base64 image can be 13 MB of text: echoing it in every GET, list page and notification would bury
 * the task. Views show its size and a digest instead; URLs are shown as sent.
 */
export function summarizeImage(source: string): string {
  if (isImageUrl(source)) return source;
  const bytes = Math.floor((source.length * 3) / 4) - (source.match(/=+$/)?.[0].length ?? 0);
  return `base64 image (${bytes} bytes, sha256 ${createHash('sha256').update(source).digest('hex').slice(0, 16)})`;
}

function summarizeRequestImages(request: Record<string, unknown>): Record<string, unknown> {
  const images = request.element_image_list as { frontal_image: string; refer_images: { image_url: string }[] } | undefined;
  if (!images) return request;
  return {
    ...request,
    element_image_list: {
      frontal_image: summarizeImage(images.frontal_image),
      refer_images: images.refer_images.map((image) => ({ image_url: summarizeImage(image.image_url) })),
    },
  };
}

export function toTaskView(task: TaskRecord): TaskView {
  return {
    task_id: task.id,
    external_task_id: task.externalTaskId,
    status: task.status,
    status_message: task.statusMessage,
    upstream_task_id: task.upstreamTaskId,
    request: {
      ...summarizeRequestImages(task.request),
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
