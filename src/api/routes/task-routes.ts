import express, { type Request, type Response, type Router } from 'express';
import { z } from 'zod';
import type { TaskRecord, TaskRepository } from '../../db/task-repository';
import { queuePosition, type Throughput } from '../../live/queue-position';
import { preferredWaitSeconds, waitForTask } from '../../live/wait-for-task';
import { taskNotFound } from '../../errors';
import { cancelTask } from '../../tasks/cancel-task';
import { redeliverLatestNotification, type RedeliverDeps } from '../../tasks/redeliver-notification';
import { createTask, type CreateTaskDeps } from '../../tasks/create-task';
import { createTaskRequestSchema } from '../../tasks/task-request';
import { isTerminal, TASK_STATUSES } from '../../tasks/task-status';
import { toTaskEventView, toTaskView } from '../../tasks/task-view';
import { currentTenant } from '../authenticate';
import { createStored } from '../create-admission';
import { parseOrThrow } from '../validation';
import { streamTask, type TaskStreamDeps } from './task-stream';

export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 100;

/** Cursors are opaque to clients; inside, the id of the last task on the previous page. */
const encodeCursor = (taskId: string): string => Buffer.from(taskId).toString('base64url');
const decodeCursor = (cursor: string): string => Buffer.from(cursor, 'base64url').toString('utf8');

/** Optional; printable ASCII as in the IETF Idempotency-Key draft, so it can be logged and compared safely. */
export const idempotencyKeySchema = z
  .string()
  .min(1, 'must not be empty')
  .max(255, 'must not exceed 255 characters')
  .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces')
  .optional();

export const listTasksQuerySchema = z.strictObject({
  status: z.enum(TASK_STATUSES, { error: `must be one of ${TASK_STATUSES.join(', ')}` }).optional(),
  external_task_id: z.string().min(1).optional(),
  limit: z.coerce
    .number({ error: 'must be a number' })
    .int('must be an integer')
    .min(1, 'must be at least 1')
    .max(MAX_PAGE_SIZE, `must be at most ${MAX_PAGE_SIZE}`)
    .default(DEFAULT_PAGE_SIZE),
  cursor: z
    .string()
    .refine((value) => /^tsk_[0-9A-Z]{26}$/.test(decodeCursor(value)), 'is not a cursor returned by this API')
    .optional(),
});

/**
 * With `Prefer: wait=N` (RFC 7240): the task once it is terminal, or as it stands after N seconds (at most
 * 60), with `Preference-Applied`; without it, the task as it stands now.
 */
async function honourPreferWait(deps: TaskRoutesDeps, req: Request, res: Response, task: TaskRecord): Promise<TaskRecord> {
  const waitS = preferredWaitSeconds(req.get('prefer'));
  if (waitS === undefined) return task;
  res.set('Preference-Applied', `wait=${waitS}`);
  if (isTerminal(task.status) || waitS === 0) return task;
  const tenantId = currentTenant(res).tenantId;
  return (await waitForTask(deps.taskChanges, task.id, () => deps.tasks.findForTenant(tenantId, task.id), waitS * 1000)) ?? task;
}

export type TaskRoutesDeps = CreateTaskDeps & RedeliverDeps & TaskStreamDeps & { tasks: TaskRepository; throughput: Throughput; fairShare: boolean };

/** One task as GET shows it: a queued one with its place in the queue. */
async function singleTaskView(deps: TaskRoutesDeps, task: TaskRecord) {
  const view = toTaskView(task);
  return task.status === 'queued' ? { ...view, queue_position: await queuePosition(deps, task) } : view;
}

export function taskRoutes(deps: TaskRoutesDeps): Router {
  const router = express.Router();

  router.post('/', async (req, res) => {
    const idempotencyKey = parseOrThrow(idempotencyKeySchema, req.get('idempotency-key'), 'Idempotency-Key header');
    const request = parseOrThrow(createTaskRequestSchema, req.body, 'task');
    const { task, replayed, queued } = await createTask(deps, currentTenant(res).tenantId, request, { idempotencyKey });
    createStored(res, queued);
    if (replayed) res.set('Idempotent-Replayed', 'true');
    res.location(`/v1/tasks/${task.id}`);
    res.status(202).json(toTaskView(await honourPreferWait(deps, req, res, task)));
  });

  router.get('/', async (req, res) => {
    const query = parseOrThrow(listTasksQuerySchema, req.query, 'query');
    const { tasks, hasMore } = await deps.tasks.list(currentTenant(res).tenantId, {
      status: query.status,
      externalTaskId: query.external_task_id,
      limit: query.limit,
      afterId: query.cursor ? decodeCursor(query.cursor) : undefined,
    });
    const last = tasks.at(-1);
    res.json({ data: tasks.map(toTaskView), next_cursor: hasMore && last ? encodeCursor(last.id) : null });
  });

  router.get('/by-external-id/:external_task_id', async (req, res) => {
    const task = await deps.tasks.findByExternalId(currentTenant(res).tenantId, req.params.external_task_id);
    if (!task) throw taskNotFound(req.params.external_task_id);
    res.json(await singleTaskView(deps, await honourPreferWait(deps, req, res, task)));
  });

  router.get('/:task_id', async (req, res) => {
    const task = await deps.tasks.findForTenant(currentTenant(res).tenantId, req.params.task_id);
    if (!task) throw taskNotFound(req.params.task_id);
    res.json(await singleTaskView(deps, await honourPreferWait(deps, req, res, task)));
  });

  router.get('/:task_id/stream', streamTask(deps));

  router.get('/:task_id/events', async (req, res) => {
    const task = await deps.tasks.findForTenant(currentTenant(res).tenantId, req.params.task_id);
    if (!task) throw taskNotFound(req.params.task_id);
    const events = await deps.tasks.listEvents(task.id);
    res.json({ data: events.map(toTaskEventView) });
  });

  router.post('/:task_id/redeliver', async (req, res) => {
    const task = await deps.tasks.findForTenant(currentTenant(res).tenantId, req.params.task_id);
    if (!task) throw taskNotFound(req.params.task_id);
    const delivery = await redeliverLatestNotification(deps, task);
    res.status(202).json({ delivery_id: delivery.id, task_id: task.id, url: delivery.url });
  });

  router.post('/:task_id/cancel', async (req, res) => {
    const task = await cancelTask(deps.tasks, currentTenant(res).tenantId, req.params.task_id);
    res.json(toTaskView(task));
  });

  return router;
}
