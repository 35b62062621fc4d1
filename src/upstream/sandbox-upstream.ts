import { randomUUID } from 'node:crypto';
import express, { type Router } from 'express';
import type { Logger } from '../logger';
import { summarizeImage } from '../tasks/task-view';
import { ELEMENTS_PATH } from './kling-client';

/**
 * A stand-in for Kling when no credentials are configured, so the service works on a fresh machine.
 * It speaks Kling's wire format on Kling's paths, and the worker reaches it through the same HTTP client
 * and Kling calls back through the same webhook route as in production: accept, then `processing`, then
 * `succeed` with a plausible element. State lives in memory (it is a demo, not a store).
 */
interface SandboxTask {
  task_id: string;
  task_status: 'submitted' | 'processing' | 'succeed';
  task_status_msg: string;
  task_info: { external_task_id: string | null };
  task_result: Record<string, unknown>;
  created_at: number;
  updated_at: number;
  callbackUrl: string | null;
  request: Record<string, unknown>;
}

function summarizeImages(list: unknown): unknown {
  const images = list as { frontal_image: string; refer_images: { image_url: string }[] } | undefined;
  if (!images?.frontal_image) return {};
  return {
    frontal_image: summarizeImage(images.frontal_image),
    refer_images: (images.refer_images ?? []).map((image) => ({ image_url: summarizeImage(image.image_url) })),
  };
}

const envelope = (data: unknown, code = 0, message = 'SUCCEED') => ({ code, message, request_id: randomUUID(), data });

const publicView = ({ callbackUrl: _url, request: _request, ...task }: SandboxTask) => task;

export function createSandboxUpstream(options: { stepDelayMs: number; logger: Logger }): Router {
  const tasks = new Map<string, SandboxTask>();
  const byExternalId = new Map<string, string>();
  let nextId = 800_000_000_000_000_000n;

  async function advance(task: SandboxTask, status: SandboxTask['task_status']): Promise<void> {
    task.task_status = status;
    task.updated_at = Date.now();
    if (status === 'succeed') {
      task.task_result = {
        elements: [
          {
            element_id: String(300_000_000_000_000 + Math.floor(Math.random() * 1e12)),
            element_name: task.request.element_name,
            element_description: task.request.element_description,
            reference_type: task.request.reference_type,
            // Kling answers with the URLs of the images it stored; the simulator keeps base64 out of results.
            element_image_list: summarizeImages(task.request.element_image_list),
            element_video_list: task.request.element_video_list ?? {},
            tag_list: task.request.tag_list ?? [],
            owned_by: 'sandbox',
            status: 'succeed',
          },
        ],
      };
    }
    if (!task.callbackUrl) return;
    try {
      await fetch(task.callbackUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(publicView(task)),
        signal: AbortSignal.timeout(10_000),
      });
    } catch (error) {
      options.logger.warn({ err: error, upstreamTaskId: task.task_id }, 'sandbox callback failed');
    }
  }

  const router = express.Router();
  router.use(express.json({ limit: '64mb' }));

  router.post(ELEMENTS_PATH, (req, res) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const externalId = typeof body.external_task_id === 'string' && body.external_task_id ? body.external_task_id : null;
    if (externalId && byExternalId.has(externalId)) {
      res.status(400).json(envelope(undefined, 1201, `external_task_id ${externalId} already exists`));
      return;
    }
    const now = Date.now();
    const task: SandboxTask = {
      task_id: String(nextId++),
      task_status: 'submitted',
      task_status_msg: '',
      task_info: { external_task_id: externalId },
      task_result: {},
      created_at: now,
      updated_at: now,
      callbackUrl: typeof body.callback_url === 'string' ? body.callback_url : null,
      request: body,
    };
    tasks.set(task.task_id, task);
    if (externalId) byExternalId.set(externalId, task.task_id);
    setTimeout(() => {
      void advance(task, 'processing').then(() => setTimeout(() => void advance(task, 'succeed'), options.stepDelayMs).unref());
    }, options.stepDelayMs).unref();
    res.json(envelope(publicView(task)));
  });

  router.get(`${ELEMENTS_PATH}/:id`, (req, res) => {
    const id = byExternalId.get(req.params.id) ?? req.params.id;
    const task = tasks.get(id);
    if (!task) {
      res.status(400).json(envelope(undefined, 1201, 'Task not found by id/external id'));
      return;
    }
    res.json(envelope(publicView(task)));
  });

  return router;
}
