import express, { type RequestHandler, type Router } from 'express';
import { z } from 'zod';
import type { TaskRecord, TaskRepository } from '../../db/task-repository';
import type { TenantRepository } from '../../db/tenant-repository';
import { taskNotFound } from '../../errors';
import { createTask, type CreateTaskDeps } from '../../tasks/create-task';
import { buildCreateTaskRequestSchema } from '../../tasks/task-request';
import { authenticateApiKey, currentTenant } from '../authenticate';
import { createStored } from '../create-admission';
import { parseOrThrow } from '../validation';
import { klingSuccess, toKlingTask } from './kling-envelope';
import { assignRequestId, klingErrorHandler, klingRequestId, klingRouteNotFound } from './kling-error-middleware';
import { parseLenientJson } from './lenient-json';

export const ELEMENTS_PATH = '/v1/general/advanced-custom-elements';

/** Kling's documented list ranges (NOTES-kling-api.md §2). */
export const MAX_PAGE_NUM = 1000;
export const MAX_PAGE_SIZE = 500;
export const DEFAULT_PAGE_SIZE = 30;

/** /v1's schema and field paths; only Kling's own example (refer image = frontal image) is let through. */
export const klingCreateRequestSchema = buildCreateTaskRequestSchema({ allowReferSameAsFrontal: true });

const pageField = (max: number, fallback: number) =>
  z.coerce
    .number({ error: 'must be a number' })
    .int('must be an integer')
    .min(1, 'must be at least 1')
    .max(max, `must be at most ${max}`)
    .default(fallback);

export const listElementsQuerySchema = z.strictObject({
  pageNum: pageField(MAX_PAGE_NUM, 1),
  pageSize: pageField(MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE),
});

export interface KlingCompatDeps extends CreateTaskDeps {
  tenants: TenantRepository;
  /** Cached key lookups, as on /v1. */
  apiKeys?: Pick<TenantRepository, 'authenticate'>;
  /** The same limit as /v1's JSON parser. */
  bodyLimit: string;
  /** /v1's create admission (create-admission.ts): creates here count against the same limit. */
  admitCreate?: RequestHandler;
}

/** Kling's query takes its own task id or the client's external_task_id in the same path slot. */
async function findByAnyId(tasks: TaskRepository, tenantId: string, id: string): Promise<TaskRecord | null> {
  return (await tasks.findForTenant(tenantId, id)) ?? (await tasks.findByExternalId(tenantId, id));
}

/**
 * Kling's element API under `/kling` (CONTRACT.md "Kling-compatible surface"): the same tasks and domain
 * functions as /v1, in Kling's paths, envelope, status names and error codes.
 */
export function klingCompatRoutes(deps: KlingCompatDeps): Router {
  const router = express.Router();
  router.use(assignRequestId, authenticateApiKey(deps.apiKeys ?? deps.tenants));
  // Kling documents Content-Type as optional, and curl without it says form-urlencoded: read any body as text.
  router.use(express.text({ type: () => true, limit: deps.bodyLimit }));

  const admitted: RequestHandler[] = deps.admitCreate ? [deps.admitCreate] : [];
  router.post(ELEMENTS_PATH, ...admitted, async (req, res) => {
    const request = parseOrThrow(klingCreateRequestSchema, parseLenientJson(req.body), 'task');
    // The callback_url is the client's own, notified in Kling's (unsigned) callback shape on this surface.
    const { task, queued } = await createTask(deps, currentTenant(res).tenantId, request, { callbackFormat: 'kling' });
    createStored(res, queued);
    res.json(klingSuccess(klingRequestId(res), toKlingTask(task)));
  });

  router.get(ELEMENTS_PATH, async (req, res) => {
    const { pageNum, pageSize } = parseOrThrow(listElementsQuerySchema, req.query, 'query');
    const { tasks } = await deps.tasks.list(currentTenant(res).tenantId, { limit: pageSize, offset: (pageNum - 1) * pageSize });
    res.json(klingSuccess(klingRequestId(res), tasks.map(toKlingTask)));
  });

  router.get(`${ELEMENTS_PATH}/:id`, async (req, res) => {
    const task = await findByAnyId(deps.tasks, currentTenant(res).tenantId, req.params.id);
    if (!task) throw taskNotFound(req.params.id);
    res.json(klingSuccess(klingRequestId(res), toKlingTask(task)));
  });

  router.use(klingRouteNotFound);
  router.use(klingErrorHandler(deps.logger));
  return router;
}
