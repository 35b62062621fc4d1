import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Client } from 'pg';
import { bullPrefix } from '../../src/queue/queues';
import { validImageTask } from './factories';
import type { FakeKling } from './fake-kling';
import { waitUntil } from './fault-utils';

/**
 * What the outage and rate-limit fault tests share on top of fault-utils: submitting tasks over HTTP and
 * recording every answer, reading task states straight from Postgres, and checking what the fake Kling saw
 * (duplicates, request rate).
 */

export const TERMINAL_STATUSES = ['succeed', 'failed', 'canceled'];

export interface PostResult {
  index: number;
  /** HTTP status, or 0 when the request itself failed (connection refused or reset). */
  status: number;
  taskId?: string;
  error?: string;
  /** When the request was sent and answered (ms since epoch). */
  sentAt: number;
  answeredAt: number;
}

/** POSTs one valid task to `${apiUrl}/v1/tasks`; never throws (a network failure is status 0). */
export async function postTask(apiUrl: string, auth: string, index: number, label: string): Promise<PostResult> {
  const sentAt = Date.now();
  try {
    const response = await fetch(`${apiUrl}/v1/tasks`, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/json' },
      body: JSON.stringify(validImageTask({ element_name: `Fault ${index}`, external_task_id: `${label}-${index}` })),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await response.text();
    let taskId: string | undefined;
    try {
      taskId = (JSON.parse(text) as { task_id?: string }).task_id;
    } catch {
      // Not JSON: kept out of taskId; the status tells.
    }
    return { index, status: response.status, taskId: response.status === 202 ? taskId : undefined, sentAt, answeredAt: Date.now(), ...(response.status >= 300 ? { error: text.slice(0, 300) } : {}) };
  } catch (error) {
    return { index, status: 0, error: (error as Error).message, sentAt, answeredAt: Date.now() };
  }
}

/** A label unique to this run, for external_task_ids. */
export const runLabel = (name: string): string => `${name}-${randomBytes(3).toString('hex')}`;

/** Submits `count` tasks with at most `concurrency` requests open at a time. */
export async function submitTasks(apiUrl: string, auth: string, count: number, options: { concurrency?: number; label?: string } = {}): Promise<PostResult[]> {
  const { concurrency = 10, label = runLabel('fault') } = options;
  const results: PostResult[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) results.push(await postTask(apiUrl, auth, next++, label));
    }),
  );
  return results.sort((a, b) => a.index - b.index);
}

export function countBy<T>(values: T[], key: (value: T) => string = String): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const value of values) counts[key(value)] = (counts[key(value)] ?? 0) + 1;
  return counts;
}

/** Task rows by status, for these ids. */
export async function statusCounts(pg: Client, taskIds: string[]): Promise<Record<string, number>> {
  const rows = await pg.query<{ status: string; n: number }>('SELECT status, count(*)::int AS n FROM tasks WHERE id = ANY($1) GROUP BY status ORDER BY status', [taskIds]);
  return Object.fromEntries(rows.rows.map((r) => [r.status, r.n]));
}

/** Task events by type (submit_retry split by rate_limited, submitted by adopted), for these ids. */
export async function eventCounts(pg: Client, taskIds: string[]): Promise<Record<string, number>> {
  const rows = await pg.query<{ kind: string; n: number }>(
    `SELECT CASE WHEN type = 'submitted' AND (detail->>'adopted')::boolean THEN 'submitted(adopted)'
                 WHEN type = 'submit_retry' AND (detail->>'rate_limited')::boolean THEN 'submit_retry(rate_limited)'
                 WHEN type = 'requeued' THEN 'requeued(job ' || coalesce(detail->>'previous_job_state', '?') || ')'
                 ELSE type END AS kind, count(*)::int AS n
       FROM task_events WHERE task_id = ANY($1) GROUP BY 1 ORDER BY 1`,
    [taskIds],
  );
  return Object.fromEntries(rows.rows.map((r) => [r.kind, r.n]));
}

/**
 * Waits until every task is terminal, reading Postgres through `pg()` (a getter, so a test may reconnect
 * after an outage). Returns the final status counts.
 */
export async function waitAllTerminal(
  pg: () => Client,
  taskIds: string[],
  options: { timeoutMs: number; context?: () => string },
): Promise<Record<string, number>> {
  let last: Record<string, number> = {};
  await waitUntil(
    async () => {
      last = await statusCounts(pg(), taskIds);
      return TERMINAL_STATUSES.reduce((sum, s) => sum + (last[s] ?? 0), 0) === taskIds.length;
    },
    `all ${taskIds.length} tasks to be terminal`,
    { timeoutMs: options.timeoutMs, intervalMs: 250, context: () => `statuses: ${JSON.stringify(last)}\n${options.context?.() ?? ''}` },
  );
  return last;
}

/** The most entries of `times` (sorted ascending, ms) within any sliding window of `windowMs`. */
export function maxInWindow(times: number[], windowMs: number): number {
  let max = 0;
  for (let first = 0, last = 0; last < times.length; last++) {
    while (times[last]! - times[first]! >= windowMs) first++;
    max = Math.max(max, last - first + 1);
  }
  return max;
}

export interface UpstreamReport {
  /** Upstream tasks the fake made. */
  upstreamTasks: number;
  /** Our task ids with more than one upstream task (needs `uniqueExternalTaskId: false` to show). */
  duplicates: string[];
  /** Our task ids Kling never got. */
  missing: string[];
  /** Create requests (accepted or not), and task ids whose create was sent more than once. */
  createRequests: number;
  resent: string[];
  /** GETs (look-ups before a retried submit, polls). */
  queries: number;
  rateLimited: number;
  /** Most create requests that arrived / were accepted within any `windowMs`. */
  maxCreatesInWindow: number;
  maxAcceptedInWindow: number;
}

export function upstreamReport(fake: FakeKling, taskIds: string[], windowMs = 1_000): UpstreamReport {
  const perTask = fake.tasksPerExternalId();
  const creates = fake.creates();
  const createsPerTask = countBy(creates, (request) => String(request.body?.external_task_id));
  return {
    upstreamTasks: fake.tasks.size,
    duplicates: taskIds.filter((id) => (perTask.get(id) ?? 0) > 1),
    missing: taskIds.filter((id) => !perTask.has(id)),
    createRequests: creates.length,
    resent: taskIds.filter((id) => (createsPerTask[id] ?? 0) > 1),
    queries: fake.queries().length,
    rateLimited: fake.rateLimitedCreates,
    maxCreatesInWindow: maxInWindow(creates.map((r) => r.at).sort((a, b) => a - b), windowMs),
    maxAcceptedInWindow: fake.maxAcceptedInWindow(windowMs),
  };
}

/** GET `url` and report status, headers and body text; never throws (a network failure is status 0). */
export async function probe(url: string, init: RequestInit = {}): Promise<{ status: number; headers: Headers | undefined; text: string; at: number }> {
  const at = Date.now();
  try {
    const response = await fetch(url, { ...init, signal: AbortSignal.timeout(5_000) });
    return { status: response.status, headers: response.headers, text: await response.text(), at };
  } catch (error) {
    return { status: 0, headers: undefined, text: (error as Error).message, at };
  }
}

/** Removes a queue prefix's BullMQ keys from a shared Redis (the machine's), so test runs leave nothing behind. */
export async function dropQueueKeys(redisUrl: string, queuePrefix: string): Promise<number> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1, connectTimeout: 3_000, retryStrategy: () => null, lazyConnect: true });
  redis.on('error', () => undefined);
  let removed = 0;
  try {
    await redis.connect();
    const prefix = bullPrefix(queuePrefix);
    // Redis's MATCH treats only * ? [ ] \ specially; the prefix (letters, digits, -, _, braces) has none.
    let cursor = '0';
    do {
      const [nextCursor, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = nextCursor;
      if (keys.length) removed += await redis.del(...keys);
    } while (cursor !== '0');
  } catch {
    // Best effort: a leftover prefix is harmless (it is unique).
  } finally {
    redis.disconnect();
  }
  return removed;
}

/** Does the text look like it leaks a stack trace or internals? */
export const looksLikeStackTrace = (text: string): boolean => /\n\s+at\s|\bat\s+\S+\s+\(|\.(ts|js):\d+|node_modules|PrismaClient|Invalid `prisma/.test(text);
