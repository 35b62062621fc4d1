import { AppError } from '../errors';
import { newDeliveryId } from '../ids';
import { Prisma, type Task as TaskRow } from '../generated/prisma/client';
import type { TaskStatus } from '../tasks/task-status';
import { statusesBefore } from '../tasks/task-status';
import type { Db } from './prisma';

/** A task as the domain sees it: plain data, no ORM types. */
export interface TaskRecord {
  id: string;
  tenantId: string;
  externalTaskId: string | null;
  status: TaskStatus;
  statusMessage: string | null;
  request: Record<string, unknown>;
  callbackUrl: string | null;
  callbackFormat: CallbackFormat;
  upstreamTaskId: string | null;
  result: unknown;
  error: { code: string; message: string } | null;
  attempts: number;
  submitInFlight: boolean;
  createdAt: Date;
  updatedAt: Date;
  submittedAt: Date | null;
  completedAt: Date | null;
  lastUpstreamAt: Date | null;
}

export type CallbackFormat = 'standard' | 'kling';

export interface NewTaskEvent {
  type: string;
  status?: TaskStatus | null;
  detail?: Record<string, unknown> | null;
}

function toRecord(row: TaskRow): TaskRecord {
  return {
    id: row.id,
    tenantId: row.tenantId,
    externalTaskId: row.externalTaskId,
    status: row.status,
    statusMessage: row.statusMessage,
    request: row.request as Record<string, unknown>,
    callbackUrl: row.callbackUrl,
    callbackFormat: row.callbackFormat === 'kling' ? 'kling' : 'standard',
    upstreamTaskId: row.upstreamTaskId,
    result: row.result,
    error: row.errorCode ? { code: row.errorCode, message: row.errorMessage ?? '' } : null,
    attempts: row.attempts,
    submitInFlight: row.submitInFlight,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
    submittedAt: row.submittedAt,
    completedAt: row.completedAt,
    lastUpstreamAt: row.lastUpstreamAt,
  };
}

const eventData = (taskId: string, event: NewTaskEvent): Prisma.TaskEventCreateManyInput => ({
  taskId,
  type: event.type,
  status: event.status ?? null,
  detail: (event.detail ?? Prisma.DbNull) as Prisma.InputJsonValue,
});

const isUniqueViolation = (error: unknown): boolean =>
  error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002';

export interface TaskChanges {
  statusMessage?: string | null;
  upstreamTaskId?: string;
  result?: unknown;
  error?: { code: string; message: string } | null;
  submittedAt?: Date;
  completedAt?: Date;
  lastUpstreamAt?: Date;
  submitInFlight?: boolean;
}

/** Fields clients never see: recording only these (e.g. for an ignored duplicate callback) leaves updated_at alone. */
const BOOKKEEPING_FIELDS: readonly (keyof TaskChanges)[] = ['lastUpstreamAt', 'submitInFlight'];

function changesToData(changes: TaskChanges): Prisma.TaskUpdateManyMutationInput {
  const visible = (Object.keys(changes) as (keyof TaskChanges)[]).some((key) => changes[key] !== undefined && !BOOKKEEPING_FIELDS.includes(key));
  const data: Prisma.TaskUpdateManyMutationInput = visible ? { updatedAt: new Date() } : {};
  if (changes.statusMessage !== undefined) data.statusMessage = changes.statusMessage;
  if (changes.upstreamTaskId !== undefined) data.upstreamTaskId = changes.upstreamTaskId;
  if (changes.result !== undefined) data.result = changes.result as Prisma.InputJsonValue;
  if (changes.error !== undefined) {
    data.errorCode = changes.error?.code ?? null;
    data.errorMessage = changes.error?.message ?? null;
  }
  if (changes.submittedAt) data.submittedAt = changes.submittedAt;
  if (changes.completedAt) data.completedAt = changes.completedAt;
  if (changes.lastUpstreamAt) data.lastUpstreamAt = changes.lastUpstreamAt;
  if (changes.submitInFlight !== undefined) data.submitInFlight = changes.submitInFlight;
  return data;
}

export interface ListTasksQuery {
  status?: TaskStatus;
  externalTaskId?: string;
  limit: number;
  /** Id of the last task of the previous page; ids sort by creation time. */
  afterId?: string;
  /** Rows to skip first (page-number pagination, as Kling's list has). */
  offset?: number;
}

export interface TaskRepositoryOptions {
  /**
   * The notification body for a task that has a callback_url; each status change stores one delivery
   * with it in the same transaction (an outbox), so no change is ever committed without its notification.
   */
  notificationPayload?: (task: TaskRecord) => unknown;
  /** Called after a status change committed (e.g. to queue its notification). Errors are the caller's to log. */
  onStatusChange?: (task: TaskRecord) => Promise<void>;
}

export function createTaskRepository(db: Db, options: TaskRepositoryOptions = {}) {
  return {
    /** Stores the task and its `created` event in one transaction. */
    async insert(task: {
      id: string;
      tenantId: string;
      externalTaskId: string | null;
      request: Record<string, unknown>;
      callbackUrl: string | null;
      callbackFormat?: CallbackFormat;
      /** Stored with the task, in the same transaction: a second request with the key finds this task. */
      idempotency?: { key: string; requestHash: string };
    }): Promise<TaskRecord> {
      const { idempotency, ...fields } = task;
      try {
        const [row] = await db.$transaction([
          db.task.create({ data: { ...fields, request: fields.request as Prisma.InputJsonValue } }),
          db.taskEvent.create({ data: eventData(task.id, { type: 'created', status: 'queued' }) }),
          ...(idempotency ? [db.idempotencyKey.create({ data: { tenantId: task.tenantId, taskId: task.id, ...idempotency } })] : []),
        ]);
        return toRecord(row as TaskRow);
      } catch (error) {
        if (isUniqueViolation(error) && task.externalTaskId !== null) {
          const existing = await db.task.findUnique({
            where: { tenantId_externalTaskId: { tenantId: task.tenantId, externalTaskId: task.externalTaskId } },
            select: { id: true },
          });
          throw new AppError('EXTERNAL_TASK_ID_CONFLICT', `external_task_id ${JSON.stringify(task.externalTaskId)} is already used by task ${existing?.id ?? '(unknown)'}`, {
            task_id: existing?.id,
            errors: [{ path: 'external_task_id', message: `already used by task ${existing?.id ?? '(unknown)'}` }],
          });
        }
        throw error;
      }
    },

    async findById(id: string): Promise<TaskRecord | null> {
      const row = await db.task.findUnique({ where: { id } });
      return row ? toRecord(row) : null;
    },

    async findForTenant(tenantId: string, id: string): Promise<TaskRecord | null> {
      const row = await db.task.findFirst({ where: { id, tenantId } });
      return row ? toRecord(row) : null;
    },

    async findByExternalId(tenantId: string, externalTaskId: string): Promise<TaskRecord | null> {
      const row = await db.task.findUnique({ where: { tenantId_externalTaskId: { tenantId, externalTaskId } } });
      return row ? toRecord(row) : null;
    },

    /** Newest first; fetches one extra row to know whether another page exists. */
    async list(tenantId: string, query: ListTasksQuery): Promise<{ tasks: TaskRecord[]; hasMore: boolean }> {
      const rows = await db.task.findMany({
        where: {
          tenantId,
          ...(query.status ? { status: query.status } : {}),
          ...(query.externalTaskId ? { externalTaskId: query.externalTaskId } : {}),
          ...(query.afterId ? { id: { lt: query.afterId } } : {}),
        },
        orderBy: { id: 'desc' },
        skip: query.offset,
        take: query.limit + 1,
      });
      return { tasks: rows.slice(0, query.limit).map(toRecord), hasMore: rows.length > query.limit };
    },

    /**
     * Moves the task to `next` only if its current status may precede it — one conditional UPDATE, so of
     * two racing updates exactly one wins — and records `event` in the same transaction.
     * Returns the updated task, or null when the update was stale, duplicate or out of order.
     */
    async transition(id: string, next: TaskStatus, changes: TaskChanges, event: NewTaskEvent, where: Prisma.TaskWhereInput = {}): Promise<TaskRecord | null> {
      const task = await db.$transaction(async (tx) => {
        const updated = await tx.task.updateMany({
          where: { ...where, id, status: { in: statusesBefore(next) } },
          data: { ...changesToData(changes), status: next, updatedAt: new Date() },
        });
        if (updated.count === 0) return null;
        await tx.taskEvent.create({ data: eventData(id, { ...event, status: next }) });
        const record = toRecord(await tx.task.findUniqueOrThrow({ where: { id } }));
        if (record.callbackUrl && options.notificationPayload) {
          await tx.webhookDelivery.create({
            data: { id: newDeliveryId(), taskId: id, url: record.callbackUrl, payload: options.notificationPayload(record) as Prisma.InputJsonValue },
          });
        }
        return record;
      });
      // The change is committed whatever the hook does; the hook reports its own failures.
      if (task && options.onStatusChange) await options.onStatusChange(task).catch(() => undefined);
      return task;
    },

    /** Changes fields without touching the status (e.g. remember the upstream id learned late). */
    async update(id: string, changes: TaskChanges, where: Prisma.TaskWhereInput = {}): Promise<boolean> {
      const updated = await db.task.updateMany({ where: { ...where, id }, data: changesToData(changes) });
      return updated.count > 0;
    },

    /**
     * A worker claims a queued task before calling Kling: marks the submit in flight and counts the
     * attempt. Returns null when the task is no longer queued (canceled, or already accepted upstream).
     */
    async claimForSubmit(id: string): Promise<TaskRecord | null> {
      const claimed = await db.task.updateMany({
        where: { id, status: 'queued' },
        data: { submitInFlight: true, attempts: { increment: 1 }, updatedAt: new Date() },
      });
      if (claimed.count === 0) return null;
      const row = await db.task.findUnique({ where: { id } });
      return row ? toRecord(row) : null;
    },

    /** Tasks still `queued` and untouched since `before`: candidates for re-queuing. Oldest first. */
    async findQueuedUntouchedSince(before: Date, limit: number): Promise<TaskRecord[]> {
      const rows = await db.task.findMany({ where: { status: 'queued', updatedAt: { lt: before } }, orderBy: { updatedAt: 'asc' }, take: limit });
      return rows.map(toRecord);
    },

    /** Tasks Kling has but has said nothing about since `before` (callbacks late or lost). */
    async findUpstreamQuietSince(before: Date, limit: number): Promise<TaskRecord[]> {
      const rows = await db.task.findMany({
        where: { status: { in: ['submitted', 'processing'] }, OR: [{ lastUpstreamAt: { lt: before } }, { lastUpstreamAt: null }] },
        orderBy: { lastUpstreamAt: { sort: 'asc', nulls: 'first' } },
        take: limit,
      });
      return rows.map(toRecord);
    },

    /** Tasks accepted by Kling before `before` and still not finished. */
    async findSubmittedBefore(before: Date, limit: number): Promise<TaskRecord[]> {
      const rows = await db.task.findMany({
        where: { status: { in: ['submitted', 'processing'] }, submittedAt: { lt: before } },
        orderBy: { submittedAt: 'asc' },
        take: limit,
      });
      return rows.map(toRecord);
    },

    async addEvent(taskId: string, event: NewTaskEvent): Promise<void> {
      await db.taskEvent.create({ data: eventData(taskId, event) });
    },

    async listEvents(taskId: string) {
      return db.taskEvent.findMany({
        where: { taskId },
        orderBy: { id: 'asc' },
        select: { at: true, type: true, status: true, detail: true },
      });
    },
  };
}

export type TaskRepository = ReturnType<typeof createTaskRepository>;
