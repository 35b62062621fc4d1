import { createHash } from 'node:crypto';
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

/**
 * A base64 image can be 13 MB of text: echoing it in every GET, list page and notification would bury
 * the task. Views show its size and a digest instead; URLs are shown as sent.
 */
export function summarizeImage(source: string): string {
  if (/^https?:\/\//i.test(source)) return source;
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
