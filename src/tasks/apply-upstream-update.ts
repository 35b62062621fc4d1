import type { TaskChanges, TaskRecord, TaskRepository } from '../db/task-repository';
import type { Enqueuer } from '../queue/enqueue';
import type { KlingTask } from '../upstream/kling-wire';
import { otherRoundReason } from './submission-round';
import { isTerminal, type TaskStatus } from './task-status';

export type UpdateSource = 'callback' | 'poll' | 'submit';

export type UpdateOutcome =
  | { outcome: 'applied'; task: TaskRecord }
  /** Duplicate, stale or out of order: acknowledged, nothing changed. */
  | { outcome: 'ignored'; task: TaskRecord }
  /** Success reported without the element: the result is fetched from Kling before the task may finish. */
  | { outcome: 'fetching_result'; task: TaskRecord };

export interface ApplyUpdateDeps {
  tasks: TaskRepository;
  enqueuer: Enqueuer;
}

const hasElements = (snapshot: KlingTask): boolean => (snapshot.task_result?.elements?.length ?? 0) > 0;

/** What every event about Kling's report records of it. */
const reportDetail = (snapshot: KlingTask) => ({ upstream_status: snapshot.task_status, upstream_task_id: snapshot.task_id });

/** What Kling's report writes to the task whatever the task was (the rest depends on the row). */
function reportedChanges(snapshot: KlingTask, now: Date): TaskChanges {
  return {
    lastUpstreamAt: now,
    statusMessage: snapshot.task_status_msg || null,
    ...(snapshot.task_status === 'succeed' ? { result: snapshot.task_result ?? null, completedAt: now } : {}),
    ...(snapshot.task_status === 'failed'
      ? {
          completedAt: now,
          error: { code: 'UPSTREAM_TASK_FAILED', message: snapshot.task_status_msg || 'Kling reported the task as failed' },
        }
      : // A retried submit leaves its last error on the queued task; once Kling has the task it no longer applies
        // (the events keep it).
        { error: null }),
    submitInFlight: false,
  };
}

/**
 * The single path by which Kling's news (submit answer, callback, poll) changes a task. Monotonic and
 * idempotent: the conditional update in the repository lets only forward moves through.
 */
export async function applyUpstreamUpdate(
  deps: ApplyUpdateDeps,
  task: TaskRecord,
  snapshot: KlingTask,
  source: UpdateSource,
  extraDetail: Record<string, unknown> = {},
): Promise<UpdateOutcome> {
  const now = new Date();
  const next: TaskStatus = snapshot.task_status;
  const detail = { ...extraDetail, ...reportDetail(snapshot) };

  // A callback may omit task_result.elements (Kling documents none for element tasks): terminal states
  // never change again, so the task only becomes `succeed` once the element itself is known.
  if (next === 'succeed' && !hasElements(snapshot) && source === 'callback' && !isTerminal(task.status)) {
    await deps.tasks.addEvent(task.id, { type: 'callback', status: task.status, detail: { ...detail, applied: false, reason: 'result missing; fetching it from Kling' } });
    await deps.enqueuer.enqueuePoll(task.id, 'result missing from callback');
    return { outcome: 'fetching_result', task };
  }

  const changes: TaskChanges = {
    upstreamTaskId: task.upstreamTaskId ?? snapshot.task_id,
    ...reportedChanges(snapshot, now),
    ...(task.submittedAt ? {} : { submittedAt: now }),
  };
  const eventType = source === 'submit' ? 'submitted' : source;
  // Only while the task is still in the round this report is about: a retry started meanwhile (see
  // submission-round.ts) makes it stale.
  const updated = await deps.tasks.transition(task.id, next, changes, { type: eventType, detail: { ...detail, applied: true } }, { resubmissions: task.resubmissions });
  if (updated) return { outcome: 'applied', task: updated };

  await deps.tasks.update(task.id, { lastUpstreamAt: now, ...(source === 'submit' ? { submitInFlight: false } : {}) });
  // A callback can overtake the submit answer; the upstream id is still worth keeping.
  await deps.tasks.update(task.id, { upstreamTaskId: snapshot.task_id }, { upstreamTaskId: null });
  const current = (await deps.tasks.findById(task.id)) ?? task;
  await deps.tasks.addEvent(task.id, {
    type: eventType,
    status: current.status,
    detail: { ...detail, applied: false, reason: isTerminal(current.status) ? 'task already finished' : 'duplicate or out of order' },
  });
  return { outcome: 'ignored', task: current };
}

/**
 * A callback applied in one statement, without reading the task first: what the full path checks on the
 * task it reads (otherRoundReason: the round, this round's external_task_id, the upstream task id; then
 * the forward-only status rule) are conditions of the UPDATE instead, and what it derives from the row
 * (the upstream id when unset, submitted_at when unset) is derived in SQL. Returns the updated task, or
 * null when nothing was applied (duplicate, stale, another round, no such task) or the callback needs the
 * full path (a success without its element): the caller then takes the full path, which reads the task
 * and records why. Why: under load every round trip waits for Postgres and for a turn of a busy event
 * loop, and the read doubled a callback's answer time.
 */
export async function applyCallbackWithoutReading(deps: ApplyUpdateDeps, taskId: string, round: number, snapshot: KlingTask): Promise<TaskRecord | null> {
  if (snapshot.task_status === 'succeed' && !hasElements(snapshot)) return null;
  // The round itself and the upstream id are conditions of the UPDATE; this leaves the external_task_id check.
  if (otherRoundReason({ id: taskId, resubmissions: round, upstreamTaskId: null }, snapshot, round)) return null;
  const now = new Date();
  return deps.tasks.transition(
    taskId,
    snapshot.task_status,
    { upstreamTaskId: snapshot.task_id, ...reportedChanges(snapshot, now), firstSubmittedAt: now },
    { type: 'callback', detail: { ...reportDetail(snapshot), applied: true } },
    { resubmissions: round, OR: [{ upstreamTaskId: null }, { upstreamTaskId: snapshot.task_id }] },
  );
}
