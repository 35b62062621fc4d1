import { Prisma } from '../generated/prisma/client';
import { sqlPool, type Db } from './prisma';
import { jsonParam, prepared } from './sql';

export interface DeliveryRecord {
  id: string;
  taskId: string;
  url: string;
  /** The body as rendered at the status change, or null when `taskState` holds the change instead. */
  payload: unknown;
  /** The task row as it was at the status change, without its request (see TaskRepository.transition). */
  taskState: Record<string, unknown> | null;
  state: 'pending' | 'delivered' | 'failed';
  attempts: number;
  createdAt: Date;
}

export interface AttemptOutcome {
  ok: boolean;
  httpStatus: number | null;
  error: string | null;
}

interface DeliverySqlRow {
  id: string;
  task_id: string;
  url: string;
  payload: unknown;
  task_state: Record<string, unknown> | null;
  state: DeliveryRecord['state'];
  attempts: number;
  created_at: Date;
}

const DELIVERY_COLUMNS = 'id, task_id, url, payload, task_state, state, attempts, created_at';
/** The same columns of a delivery joined as `d`. */
const D_DELIVERY_COLUMNS = DELIVERY_COLUMNS.split(', ').map((column) => `d.${column}`).join(', ');

const NEXT_PENDING_SQL = `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries WHERE task_id = $1 AND state = 'pending' ORDER BY id LIMIT 1`;

/**
 * What a task's notification job starts from, as one statement: the task's request (a stored change is
 * rendered with it), the tenant's signing secret (only for tasks created on /v1: Kling-style
 * notifications are unsigned, as Kling's are) and the task's oldest pending delivery. No row: no such task.
 */
const JOB_START_SQL = `SELECT t.request AS task_request,
  CASE WHEN t.callback_format = 'standard' THEN n.webhook_secret END AS signing_secret,
  ${D_DELIVERY_COLUMNS}
FROM tasks t JOIN tenants n ON n.id = t.tenant_id
LEFT JOIN LATERAL (
  SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries WHERE task_id = t.id AND state = 'pending' ORDER BY id LIMIT 1
) d ON true
WHERE t.id = $1`;

/**
 * One attempt recorded in the delivery row and the task's timeline, and the task's next pending delivery
 * read, as one statement. The final SELECT sees the rows as they were when the statement began, so the
 * delivery just attempted is left out by id (it is still pending there).
 */
const RECORD_ATTEMPT_SQL = `WITH attempt AS (
  UPDATE webhook_deliveries
  SET attempts = attempts + 1, last_status = $2, last_error = $3, state = $4::delivery_state,
      delivered_at = CASE WHEN $4 = 'delivered' THEN $5::timestamptz ELSE delivered_at END
  WHERE id = $1
  RETURNING task_id
), event AS (
  INSERT INTO task_events (task_id, type, detail) SELECT task_id, 'notification', $6::jsonb FROM attempt
)
SELECT ${D_DELIVERY_COLUMNS}
FROM webhook_deliveries d JOIN attempt ON d.task_id = attempt.task_id
WHERE d.state = 'pending' AND d.id <> $1
ORDER BY d.id LIMIT 1`;

const fromSql = (row: DeliverySqlRow | undefined): DeliveryRecord | null =>
  row?.id ? { id: row.id, taskId: row.task_id, url: row.url, payload: row.payload, taskState: row.task_state, state: row.state, attempts: row.attempts, createdAt: row.created_at } : null;

/** A notification job's starting point (see JOB_START_SQL). */
export interface NotificationJobStart {
  taskRequest: Record<string, unknown>;
  /** Undefined: send unsigned. */
  signingSecret: string | undefined;
  /** The task's oldest pending delivery; null when none is pending. */
  next: DeliveryRecord | null;
}

export function createDeliveryRepository(db: Db) {
  return {
    /** The task's request, its signing secret and its oldest pending delivery; null when there is no such task. */
    async jobStart(taskId: string): Promise<NotificationJobStart | null> {
      const { rows } = await sqlPool(db).query<DeliverySqlRow & { task_request: Record<string, unknown>; signing_secret: string | null }>(prepared(JOB_START_SQL, [taskId]));
      const row = rows[0];
      if (!row) return null;
      return { taskRequest: row.task_request, signingSecret: row.signing_secret ?? undefined, next: fromSql(row) };
    },

    /** The task's oldest undelivered notification: deliveries go out one at a time, in order. */
    async nextPending(taskId: string): Promise<DeliveryRecord | null> {
      const { rows } = await sqlPool(db).query<DeliverySqlRow>(prepared(NEXT_PENDING_SQL, [taskId]));
      return fromSql(rows[0]);
    },

    /**
     * Records one attempt (`final`: a failure that will not be retried) with its `notification` event,
     * and returns the task's next pending delivery (null when none is left, or when this one stays
     * pending for a retry: it holds the line).
     */
    async recordAttempt(id: string, outcome: AttemptOutcome, final: boolean, eventDetail: Record<string, unknown>): Promise<DeliveryRecord | null> {
      const state = outcome.ok ? 'delivered' : final ? 'failed' : 'pending';
      const { rows } = await sqlPool(db).query<DeliverySqlRow>(
        prepared(RECORD_ATTEMPT_SQL, [id, outcome.httpStatus, outcome.error, state, new Date(), jsonParam(eventDetail)]),
      );
      return state === 'pending' ? null : fromSql(rows[0]);
    },

    /** Tasks with notifications waiting since before `before` (their job may have been lost). */
    async tasksWithPendingSince(before: Date, limit: number): Promise<string[]> {
      const rows = await db.webhookDelivery.findMany({
        where: { state: 'pending', createdAt: { lt: before } },
        distinct: ['taskId'],
        select: { taskId: true },
        take: limit,
      });
      return rows.map((row) => row.taskId);
    },

    /** Queues the latest notification of a task again (POST /v1/tasks/:id/redeliver). */
    async redeliverLatest(taskId: string, newId: string): Promise<DeliveryRecord | null> {
      const latest = await db.webhookDelivery.findFirst({ where: { taskId }, orderBy: { id: 'desc' } });
      if (!latest) return null;
      const json = (value: Prisma.JsonValue | null) => (value === null ? Prisma.DbNull : (value as Prisma.InputJsonValue));
      const row = await db.webhookDelivery.create({
        data: { id: newId, taskId, url: latest.url, payload: json(latest.payload), taskState: json(latest.taskState) },
      });
      return { ...row, taskState: row.taskState as Record<string, unknown> | null };
    },
  };
}

export type DeliveryRepository = ReturnType<typeof createDeliveryRepository>;
