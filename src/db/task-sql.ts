import type { Prisma, Task as TaskRow } from '../generated/prisma/client';
import { jsonParam, type Params } from './sql';

/**
 * The hot task statements as SQL (see sql.ts): the row mapping, and SET / WHERE clauses built from the
 * same Prisma inputs the repository already makes, so both paths write exactly the same columns.
 */

/** A `tasks` row as pg returns it (snake_case; jsonb parsed; timestamptz as Date). */
export interface TaskSqlRow {
  id: string;
  tenant_id: string;
  external_task_id: string | null;
  status: TaskRow['status'];
  status_message: string | null;
  request: TaskRow['request'];
  callback_url: string | null;
  callback_format: string;
  upstream_task_id: string | null;
  result: TaskRow['result'];
  error_code: string | null;
  error_message: string | null;
  attempts: number;
  resubmissions: number;
  submit_in_flight: boolean;
  created_at: Date;
  updated_at: Date;
  submitted_at: Date | null;
  completed_at: Date | null;
  last_upstream_at: Date | null;
}

export function taskRowFromSql(row: TaskSqlRow): TaskRow {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    externalTaskId: row.external_task_id,
    status: row.status,
    statusMessage: row.status_message,
    request: row.request,
    callbackUrl: row.callback_url,
    callbackFormat: row.callback_format,
    upstreamTaskId: row.upstream_task_id,
    result: row.result,
    errorCode: row.error_code,
    errorMessage: row.error_message,
    attempts: row.attempts,
    resubmissions: row.resubmissions,
    submitInFlight: row.submit_in_flight,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    submittedAt: row.submitted_at,
    completedAt: row.completed_at,
    lastUpstreamAt: row.last_upstream_at,
  };
}

const TIMESTAMP_COLUMNS = ['created_at', 'updated_at', 'submitted_at', 'completed_at', 'last_upstream_at'] as const;

/**
 * A row as `to_jsonb()` of a tasks row stored it in a notification's task_state (timestamps as text,
 * `request` left out), completed with the task's request (which never changes).
 */
export function taskRowFromState(state: Record<string, unknown>, request: TaskRow['request']): TaskRow {
  const row: Record<string, unknown> = { ...state, request };
  for (const column of TIMESTAMP_COLUMNS) row[column] = typeof row[column] === 'string' ? new Date(row[column] as string) : null;
  return taskRowFromSql(row as unknown as TaskSqlRow);
}

const COLUMNS: Partial<Record<keyof TaskRow, string>> = {
  id: 'id',
  tenantId: 'tenant_id',
  externalTaskId: 'external_task_id',
  status: 'status',
  statusMessage: 'status_message',
  callbackUrl: 'callback_url',
  upstreamTaskId: 'upstream_task_id',
  result: 'result',
  errorCode: 'error_code',
  errorMessage: 'error_message',
  submitInFlight: 'submit_in_flight',
  resubmissions: 'resubmissions',
  createdAt: 'created_at',
  updatedAt: 'updated_at',
  submittedAt: 'submitted_at',
  completedAt: 'completed_at',
  lastUpstreamAt: 'last_upstream_at',
};

type Scalar = string | number | boolean | Date | null;
const isScalar = (value: unknown): value is Scalar =>
  value === null || value instanceof Date || ['string', 'number', 'boolean'].includes(typeof value);

/** `col = $n, …` for plain field assignments; undefined when `data` has anything else (use Prisma then). */
export function setClause(data: Prisma.TaskUpdateManyMutationInput, params: Params): string | undefined {
  const sets: string[] = [];
  for (const [field, value] of Object.entries(data)) {
    if (value === undefined) continue;
    const column = COLUMNS[field as keyof TaskRow];
    if (!column) return undefined;
    if (field === 'result') {
      // Prisma's DbNull / JsonNull sentinels are objects; only plain JSON is written here.
      if (value !== null && typeof value === 'object' && !Array.isArray(value) && Object.getPrototypeOf(value) !== Object.prototype) return undefined;
      sets.push(`${column} = ${params.param(jsonParam(value))}::jsonb`);
      continue;
    }
    if (!isScalar(value)) return undefined;
    sets.push(`${column} = ${params.param(value)}`);
  }
  return sets.join(', ');
}

/**
 * `AND col = $n …` for equality on plain fields (null → IS NULL) and `OR` of such equalities; undefined
 * for anything richer (use Prisma then).
 */
export function whereClause(where: Prisma.TaskWhereInput, params: Params): string | undefined {
  return conditionsOf(where, params)?.map((condition) => ` AND ${condition}`).join('');
}

function conditionsOf(where: Prisma.TaskWhereInput, params: Params): string[] | undefined {
  const conditions: string[] = [];
  for (const [field, value] of Object.entries(where)) {
    if (value === undefined) continue;
    if (field === 'OR') {
      // Prisma reads an empty OR as "no row": left to Prisma.
      if (!Array.isArray(value) || value.length === 0) return undefined;
      const branches: string[] = [];
      for (const branch of value as Prisma.TaskWhereInput[]) {
        const all = conditionsOf(branch, params);
        if (all === undefined) return undefined;
        branches.push(all.length > 0 ? all.join(' AND ') : 'true');
      }
      conditions.push(`(${branches.join(' OR ')})`);
      continue;
    }
    const column = COLUMNS[field as keyof TaskRow];
    if (!column || field === 'result' || !isScalar(value)) return undefined;
    conditions.push(value === null ? `${column} IS NULL` : `${column} = ${params.param(value)}`);
  }
  return conditions;
}
