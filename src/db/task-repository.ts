import { createBatcher } from '../batcher';
import { AppError } from '../errors';
import { newDeliveryId } from '../ids';
import type { Pool, PoolClient } from 'pg';
import { Prisma, type Task as TaskRow } from '../generated/prisma/client';
import type { TaskStatus } from '../tasks/task-status';
import { statusesBefore } from '../tasks/task-status';
import { sqlPool, type Db } from './prisma';
import { isPgUniqueViolation, jsonParam, Params, prepared } from './sql';
import { setClause, taskRowFromSql, taskRowFromState, whereClause, type TaskSqlRow } from './task-sql';

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
  /** Submit attempts in the current round. */
  attempts: number;
  /** Rounds an operator started again after the task failed (see retryFailed). */
  resubmissions: number;
  submitInFlight: boolean;
  createdAt: Date;
  updatedAt: Date;
  submittedAt: Date | null;
  completedAt: Date | null;
  lastUpstreamAt: Date | null;
}

export type CallbackFormat = 'standard' | 'kling';

/** What a create stores. */
export interface NewTask {
  id: string;
  tenantId: string;
  externalTaskId: string | null;
  request: Record<string, unknown>;
  callbackUrl: string | null;
  callbackFormat?: CallbackFormat;
  /** Stored with the task, in the same statement: a second request with the key finds this task. */
  idempotency?: { key: string; requestHash: string };
}

export interface NewTaskEvent {
  type: string;
  status?: TaskStatus | null;
  detail?: Record<string, unknown> | null;
}

/** The task as a notification's task_state recorded it at its status change (see transitionStatement). */
export function taskRecordFromState(state: Record<string, unknown>, request: Record<string, unknown>): TaskRecord {
  return toRecord(taskRowFromState(state, request as TaskRow['request']));
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
    resubmissions: row.resubmissions,
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
  (error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002') || isPgUniqueViolation(error);

/*
 * The statements every task runs (submit, claim, callbacks, client reads) are plain SQL sent as prepared
 * statements on Prisma's own pool (see sql.ts for why); the rest stays on Prisma.
 */

/** The task, its `created` event and (when given) its Idempotency-Key, in one atomic statement. */
const insertTaskSql = (withIdempotencyKey: boolean): string => `WITH task AS (
  INSERT INTO tasks (id, tenant_id, external_task_id, request, callback_url, callback_format)
  VALUES ($1, $2, $3, $4::jsonb, $5, $6) RETURNING *
), created AS (
  INSERT INTO task_events (task_id, type, status) SELECT id, 'created', 'queued' FROM task
)${withIdempotencyKey ? `, idempotency AS (
  INSERT INTO idempotency_keys (tenant_id, key, request_hash, task_id) SELECT tenant_id, $7, $8, id FROM task
)` : ''}
SELECT * FROM task`;

/**
 * The same for a batch of new tasks (see batcher.ts), given as one JSON array: one statement, one commit.
 * Rows come back in no promised order; callers match them by id.
 */
const INSERT_TASKS_SQL = `WITH input AS (
  SELECT * FROM jsonb_to_recordset($1::jsonb) AS i(id text, tenant_id text, external_task_id text, request jsonb,
    callback_url text, callback_format text, idempotency_key text, request_hash text)
), task AS (
  INSERT INTO tasks (id, tenant_id, external_task_id, request, callback_url, callback_format)
  SELECT id, tenant_id, external_task_id, request, callback_url, callback_format FROM input RETURNING *
), created AS (
  INSERT INTO task_events (task_id, type, status) SELECT id, 'created', 'queued' FROM task
), idempotency AS (
  INSERT INTO idempotency_keys (tenant_id, key, request_hash, task_id)
  SELECT tenant_id, idempotency_key, request_hash, id FROM input WHERE idempotency_key IS NOT NULL
)
SELECT * FROM task`;

/**
 * Up to this many concurrent creates share one INSERT statement and commit. One batch is out at a time:
 * creates that arrive while it commits go together in the next, sent as soon as its commit is back (before
 * its creates are answered: batcher.ts), so a batch grows with the rate (about rate × a commit's round
 * trip) and nothing waits on a timer. A create that finds no batch out goes on the next turn of the event
 * loop, with whatever arrived in the same turn; at a trickle that is a commit per create, which costs CPU
 * only when there is CPU to spare. Two batches out, with creates that came close together waiting 3 ms
 * for company, cost the same CPU per create at half the bench's peak and 1 ms more at p50; at p99 neither
 * was ahead beyond the machine's noise (bench/README.md, sixteenth and seventeenth sessions). The rest of
 * the pool is left to reads and to Kling's callbacks.
 */
const INSERT_BATCH_MAX = 100;
const INSERT_BATCHES_IN_FLIGHT = 1;

const FIND_BY_ID_SQL = 'SELECT * FROM tasks WHERE id = $1';
const FIND_BY_IDS_SQL = 'SELECT * FROM tasks WHERE id = ANY($1::text[])';
const TASK_PRIMARY_KEY = 'tasks_pkey';
/**
 * Reads of single tasks by id (Kling's callbacks, clients' GETs) that arrive together share one SELECT:
 * under a burst each statement is a write to Postgres's socket and a wake-up of its backend, which on a
 * busy machine costs the API far more than the read itself (`npm run bench`, burst phase).
 */
const READ_BATCH_MAX = 100;
const READ_BATCHES_IN_FLIGHT = 3;
const FIND_BY_EXTERNAL_ID_SQL = 'SELECT * FROM tasks WHERE tenant_id = $1 AND external_task_id = $2';
const CLAIM_SQL = `UPDATE tasks SET submit_in_flight = true, attempts = attempts + 1, updated_at = $2
  WHERE id = $1 AND status = 'queued' RETURNING *`;
/** One batch of expired finished tasks; their events, deliveries and Idempotency-Keys go with them (ON DELETE CASCADE). */
const PURGE_FINISHED_SQL = `DELETE FROM tasks WHERE id IN (
  SELECT id FROM tasks WHERE status IN ('succeed', 'failed', 'canceled') AND completed_at < $1
  ORDER BY completed_at LIMIT $2 FOR UPDATE SKIP LOCKED
)`;

/** Queued tasks per tenant, and how many of them were created before the given task (ids sort by creation). */
const QUEUED_BACKLOG_SQL = `SELECT tenant_id, count(*) AS queued, count(*) FILTER (WHERE id < $1) AS before
  FROM tasks WHERE status = 'queued' AND id <> $1 GROUP BY tenant_id`;

const COUNT_UNFINISHED_SQL = `SELECT count(*) AS n FROM (
  SELECT 1 FROM tasks WHERE tenant_id = $1 AND status IN ('queued', 'submitted', 'processing') LIMIT $2
) unfinished`;

const ADD_EVENT_SQL = 'INSERT INTO task_events (task_id, type, status, detail) VALUES ($1, $2, $3, $4::jsonb)';

export interface TaskChanges {
  statusMessage?: string | null;
  upstreamTaskId?: string;
  result?: unknown;
  error?: { code: string; message: string } | null;
  submittedAt?: Date;
  /**
   * submitted_at unless it is already set, decided by the row as the UPDATE finds it (for a change made
   * without reading the task first). transition() only: its SQL statement writes it.
   */
  firstSubmittedAt?: Date;
  completedAt?: Date;
  lastUpstreamAt?: Date;
  submitInFlight?: boolean;
  /** Give back the attempt counted by claimForSubmit (Kling refused for rate reasons only). */
  refundAttempt?: boolean;
}

/** Fields clients never see: recording only these (e.g. for an ignored duplicate callback) leaves updated_at alone. */
const BOOKKEEPING_FIELDS: readonly (keyof TaskChanges)[] = ['lastUpstreamAt', 'submitInFlight'];

function changesToData(changes: TaskChanges): Prisma.TaskUpdateManyMutationInput {
  if (changes.firstSubmittedAt) throw new Error('firstSubmittedAt is written only by the SQL statement of transition()');
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
  if (changes.refundAttempt) data.attempts = { decrement: 1 };
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

/**
 * The statuses a task may be in for a move to `next`: the forward-only list, narrowed by a caller's own
 * `status` condition (cancel: only from `queued`), never widened by it.
 */
function allowedPredecessors(next: TaskStatus, where: Prisma.TaskWhereInput): TaskStatus[] {
  const before = statusesBefore(next);
  if (where.status === undefined) return before;
  if (typeof where.status !== 'string') throw new Error('transition() takes a status condition only as a single status');
  return before.filter((status) => status === where.status);
}

export interface TaskRepositoryOptions {
  /**
   * Set: each status change of a task that has a callback_url stores one delivery with it, atomically (an
   * outbox), so no change is ever committed without its notification. The one-statement path stores the
   * task as changed (`task_state`) and the worker renders the body with this same function when it sends
   * it; the Prisma paths (an operator's retry) store the body rendered.
   */
  notificationPayload?: (task: TaskRecord) => unknown;
  /** Called after a status change committed (e.g. to queue its notification). Errors are the caller's to log. */
  onStatusChange?: (task: TaskRecord) => Promise<void>;
  /** Called after a new task committed (e.g. to count it). Must not throw. */
  onCreated?: (task: TaskRecord) => void;
}

export function createTaskRepository(db: Db, options: TaskRepositoryOptions = {}) {
  const queryTask = async (queryable: Pool | PoolClient, text: string, values: unknown[]): Promise<TaskRecord | null> => {
    const { rows } = await queryable.query<TaskSqlRow>(prepared(text, values));
    return rows[0] ? toRecord(taskRowFromSql(rows[0])) : null;
  };
  const findTask = (text: string, values: unknown[]) => queryTask(sqlPool(db), text, values);

  /** The outbox row for a status change of a task with a callback_url, written in the change's transaction. */
  const storeNotification = async (tx: Prisma.TransactionClient, task: TaskRecord): Promise<void> => {
    if (!task.callbackUrl || !options.notificationPayload) return;
    await tx.webhookDelivery.create({
      data: { id: newDeliveryId(), taskId: task.id, url: task.callbackUrl, payload: options.notificationPayload(task) as Prisma.InputJsonValue },
    });
  };

  /**
   * The change is committed whatever the hook does; the hook reports its own failures. Not awaited: its
   * announcement and notification job are best-effort by design (listeners re-read the task on their
   * heartbeat; the sweep queues a job for any notification left without one), and under load each await
   * would hold the caller's answer (a Kling callback's, say) for one more turn of a busy event loop.
   * Announcements keep their order: they go out in call order on one Redis connection.
   */
  const announceStatusChange = (task: TaskRecord | null): void => {
    if (task && options.onStatusChange) void options.onStatusChange(task).catch(() => undefined);
  };

  /**
   * The conditional UPDATE, its event and (`notify`: for a task with a callback_url) its notification as
   * one statement, so the three commit together without a transaction held open across round trips
   * (`undefined` when `where` is more than plain equalities and `OR`s of them: the caller then takes the
   * Prisma path). As in that path, a `status` in `where` narrows the forward-only status list rather than
   * replacing it. The notification stores the row as updated (`task_state`, without the request, which
   * never changes); the worker renders its body from it when it sends it.
   */
  const transitionStatement = (id: string, next: TaskStatus, changes: TaskChanges, event: NewTaskEvent, where: Prisma.TaskWhereInput, notify: boolean) => {
    const params = new Params();
    const { firstSubmittedAt, ...plainChanges } = changes;
    let sets = setClause({ ...changesToData(plainChanges), status: next, updatedAt: new Date() }, params);
    if (sets !== undefined && firstSubmittedAt) sets += `, submitted_at = COALESCE(submitted_at, ${params.param(firstSubmittedAt)})`;
    const { id: _id, status: _status, ...extra } = where;
    const allowed = allowedPredecessors(next, where);
    const conditions = whereClause(extra, params);
    if (sets === undefined || conditions === undefined) return undefined;
    const notification = notify
      ? `, notification AS (
  INSERT INTO webhook_deliveries (id, task_id, url, task_state)
  SELECT ${params.param(newDeliveryId())}, id, callback_url, to_jsonb(updated) - 'request' FROM updated WHERE callback_url IS NOT NULL
)`
      : '';
    const text = `WITH updated AS (
  UPDATE tasks SET ${sets} WHERE id = ${params.param(id)} AND status = ANY(${params.param(allowed)}::task_status[])${conditions} RETURNING *
), event AS (
  INSERT INTO task_events (task_id, type, status, detail)
  SELECT id, ${params.param(event.type)}, ${params.param(next)}::task_status, ${params.param(jsonParam(event.detail))}::jsonb FROM updated
)${notification}
SELECT * FROM updated`;
    return { text, values: params.values };
  };

  /** transition() in SQL (see transitionStatement); undefined when it cannot be written as one statement. */
  const transitionSql = async (id: string, next: TaskStatus, changes: TaskChanges, event: NewTaskEvent, where: Prisma.TaskWhereInput): Promise<TaskRecord | null | undefined> => {
    const statement = transitionStatement(id, next, changes, event, where, options.notificationPayload !== undefined);
    return statement && findTask(statement.text, statement.values);
  };

  const insertOne = async (task: NewTask): Promise<TaskRecord> => {
    const { idempotency, ...fields } = task;
    try {
      const values = [fields.id, fields.tenantId, fields.externalTaskId, jsonParam(fields.request), fields.callbackUrl, fields.callbackFormat ?? 'standard'];
      if (idempotency) values.push(idempotency.key, idempotency.requestHash);
      const created = await findTask(insertTaskSql(idempotency !== undefined), values);
      if (!created) throw new Error(`INSERT of task ${fields.id} returned no row`);
      options.onCreated?.(created);
      return created;
    } catch (error) {
      // Task ids are new for every create, so the id can only be taken by an earlier attempt of this same
      // insert: a batch Postgres committed whose answer was lost on the way back (see batcher.ts). The task
      // is stored; that is this create's answer.
      if ((error as { constraint?: unknown }).constraint === TASK_PRIMARY_KEY) {
        const stored = await findTask(FIND_BY_ID_SQL, [task.id]);
        if (stored && stored.tenantId === task.tenantId) {
          options.onCreated?.(stored);
          return stored;
        }
      }
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
  };

  /** Several new tasks in one statement (and one commit); any failure sends each through insertOne instead. */
  const insertMany = async (tasks: NewTask[]): Promise<TaskRecord[]> => {
    const input = tasks.map((task) => ({
      id: task.id,
      tenant_id: task.tenantId,
      external_task_id: task.externalTaskId,
      request: task.request,
      callback_url: task.callbackUrl,
      callback_format: task.callbackFormat ?? 'standard',
      idempotency_key: task.idempotency?.key ?? null,
      request_hash: task.idempotency?.requestHash ?? null,
    }));
    const { rows } = await sqlPool(db).query<TaskSqlRow>(prepared(INSERT_TASKS_SQL, [JSON.stringify(input)]));
    const byId = new Map(rows.map((row) => [row.id, toRecord(taskRowFromSql(row))]));
    const created = tasks.map((task) => byId.get(task.id));
    if (created.includes(undefined)) throw new Error(`INSERT of ${tasks.length} tasks returned ${rows.length} rows`);
    for (const task of created) options.onCreated?.(task!);
    return created as TaskRecord[];
  };

  const insertBatched = createBatcher<NewTask, TaskRecord>({
    one: insertOne,
    many: insertMany,
    maxBatch: INSERT_BATCH_MAX,
    maxInFlight: INSERT_BATCHES_IN_FLIGHT,
  });

  const findByIdBatched = createBatcher<string, TaskRecord | null>({
    one: (id) => findTask(FIND_BY_ID_SQL, [id]),
    async many(ids) {
      const { rows } = await sqlPool(db).query<TaskSqlRow>(prepared(FIND_BY_IDS_SQL, [ids]));
      const byId = new Map(rows.map((row) => [row.id, row]));
      // A record per caller, even when two asked for the same task: callers may change what they get.
      return ids.map((id) => {
        const row = byId.get(id);
        return row ? toRecord(taskRowFromSql(row)) : null;
      });
    },
    maxBatch: READ_BATCH_MAX,
    maxInFlight: READ_BATCHES_IN_FLIGHT,
  });

  return {
    /** Stores the task, its `created` event and (when given) its Idempotency-Key in one statement. */
    insert: (task: NewTask): Promise<TaskRecord> => insertBatched(task),

    /** Read together with concurrent reads of other tasks (see READ_BATCH_MAX). */
    findById: (id: string): Promise<TaskRecord | null> => findByIdBatched(id),

    /** The task when it belongs to this tenant; another tenant's task is as absent as a missing one. */
    async findForTenant(tenantId: string, id: string): Promise<TaskRecord | null> {
      const task = await findByIdBatched(id);
      return task?.tenantId === tenantId ? task : null;
    },

    async findByExternalId(tenantId: string, externalTaskId: string): Promise<TaskRecord | null> {
      return findTask(FIND_BY_EXTERNAL_ID_SQL, [tenantId, externalTaskId]);
    },

    /**
     * Newest first; fetches one extra row to know whether another page exists. `tenantId` undefined lists
     * every tenant's tasks (operators' CLI only; the API always passes the caller's tenant).
     */
    async list(tenantId: string | undefined, query: ListTasksQuery): Promise<{ tasks: TaskRecord[]; hasMore: boolean }> {
      const rows = await db.task.findMany({
        where: {
          ...(tenantId !== undefined ? { tenantId } : {}),
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
      const viaSql = await transitionSql(id, next, changes, event, where);
      const task = viaSql !== undefined ? viaSql : await db.$transaction(async (tx) => {
        const updated = await tx.task.updateMany({
          where: { ...where, id, status: { in: allowedPredecessors(next, where) } },
          data: { ...changesToData(changes), status: next, updatedAt: new Date() },
        });
        if (updated.count === 0) return null;
        await tx.taskEvent.create({ data: eventData(id, { ...event, status: next }) });
        const record = toRecord(await tx.task.findUniqueOrThrow({ where: { id } }));
        await storeNotification(tx, record);
        return record;
      });
      announceStatusChange(task);
      return task;
    },

    /**
     * An operator sends a failed task to Kling again: the one move out of a terminal state. The task goes
     * back to `queued` as a new round (its own upstream external_task_id, attempts from 0) with everything
     * the last round left cleared; the `retried` event keeps what it was. Same transaction rules as
     * transition(): one conditional UPDATE (only from `failed`), event and notification stored with it.
     * Returns null when the task is not (or no longer) `failed`.
     */
    async retryFailed(id: string, detail: Record<string, unknown>): Promise<TaskRecord | null> {
      const task = await db.$transaction(async (tx) => {
        const before = await tx.task.findUnique({ where: { id } });
        if (!before || before.status !== 'failed') return null;
        const updated = await tx.task.updateMany({
          where: { id, status: 'failed', resubmissions: before.resubmissions },
          data: {
            status: 'queued',
            resubmissions: { increment: 1 },
            attempts: 0,
            statusMessage: null,
            upstreamTaskId: null,
            result: Prisma.DbNull,
            errorCode: null,
            errorMessage: null,
            submitInFlight: false,
            submittedAt: null,
            completedAt: null,
            lastUpstreamAt: null,
            updatedAt: new Date(),
          },
        });
        if (updated.count === 0) return null;
        const previous = {
          error: before.errorCode ? { code: before.errorCode, message: before.errorMessage } : null,
          upstream_task_id: before.upstreamTaskId,
          attempts: before.attempts,
        };
        await tx.taskEvent.create({ data: eventData(id, { type: 'retried', status: 'queued', detail: { ...detail, round: before.resubmissions + 1, previous } }) });
        const record = toRecord(await tx.task.findUniqueOrThrow({ where: { id } }));
        await storeNotification(tx, record);
        return record;
      });
      announceStatusChange(task);
      return task;
    },

    /** Changes fields without touching the status (e.g. remember the upstream id learned late). */
    async update(id: string, changes: TaskChanges, where: Prisma.TaskWhereInput = {}): Promise<boolean> {
      const params = new Params();
      const sets = setClause(changesToData(changes), params);
      const { id: _id, ...extra } = where;
      const conditions = whereClause(extra, params);
      if (sets && conditions !== undefined) {
        const result = await sqlPool(db).query(prepared(`UPDATE tasks SET ${sets} WHERE id = ${params.param(id)}${conditions}`, params.values));
        return (result.rowCount ?? 0) > 0;
      }
      const updated = await db.task.updateMany({ where: { ...where, id }, data: changesToData(changes) });
      return updated.count > 0;
    },

    /**
     * A worker claims a queued task before calling Kling: marks the submit in flight and counts the
     * attempt. Returns null when the task is no longer queued (canceled, or already accepted upstream).
     */
    async claimForSubmit(id: string): Promise<TaskRecord | null> {
      return findTask(CLAIM_SQL, [id, new Date()]);
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
      await sqlPool(db).query(prepared(ADD_EVENT_SQL, [taskId, event.type, event.status ?? null, jsonParam(event.detail)]));
    },

    /**
     * Deletes up to `batch` tasks finished before `before`, oldest first: one short statement that skips
     * rows another transaction holds, so live traffic is never blocked behind it.
     */
    async purgeFinishedBefore(before: Date, batch: number): Promise<number> {
      const result = await sqlPool(db).query(prepared(PURGE_FINISHED_SQL, [before, batch]));
      return result.rowCount ?? 0;
    },

    /** For a queued task's position: every tenant's queued tasks, and those created before `taskId`. */
    async queuedBacklog(taskId: string): Promise<{ tenantId: string; queued: number; before: number }[]> {
      const { rows } = await sqlPool(db).query<{ tenant_id: string; queued: string; before: string }>(prepared(QUEUED_BACKLOG_SQL, [taskId]));
      return rows.map((row) => ({ tenantId: row.tenant_id, queued: Number(row.queued), before: Number(row.before) }));
    },

    /** The tenant's tasks not yet finished, counted up to `upTo` (a bounded index scan, whatever the backlog). */
    async countUnfinished(tenantId: string, upTo: number): Promise<number> {
      const { rows } = await sqlPool(db).query<{ n: string }>(prepared(COUNT_UNFINISHED_SQL, [tenantId, upTo]));
      return Number(rows[0]?.n ?? 0);
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
