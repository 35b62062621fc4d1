import type { RequestHandler } from 'express';
import type { TaskRecord, TaskRepository } from '../../db/task-repository';
import { taskNotFound } from '../../errors';
import { formatSseComment, formatSseEvent } from '../../live/sse-format';
import type { TaskChange, TaskChangeBus } from '../../live/task-change-bus';
import { isTerminal, TASK_STATUSES, type TaskStatus } from '../../tasks/task-status';
import { toTaskView, type TaskView } from '../../tasks/task-view';
import { currentTenant } from '../authenticate';

export interface TaskStreamDeps {
  tasks: TaskRepository;
  taskChanges: TaskChangeBus;
  /** A comment line this often keeps proxies from closing an idle stream; the task is re-read then too. */
  heartbeatMs: number;
}

/** A version of the task: later changes have a later updated_at (ms), which is also the SSE event id. */
const versionOf = (view: Pick<TaskView, 'updated_at'>): number => Date.parse(view.updated_at);

/** Statuses only move forward; a terminal one ends the stream. */
const rank = (status: TaskStatus): number => (isTerminal(status) ? TASK_STATUSES.length : TASK_STATUSES.indexOf(status));

/**
 * GET /v1/tasks/:task_id/stream — Server-Sent Events. At once the task as it stands, then one `task`
 * event (the same JSON as GET) per status change, from whichever process committed it, in order; the
 * stream ends after the terminal state. Changes arrive as announced (each announcement carries the task
 * right after its commit); the heartbeat also re-reads Postgres, so a lost announcement only delays the
 * latest state. Event ids are the task's `updated_at` in ms: reconnect with `Last-Event-ID` and the task
 * is sent again only if it has changed since.
 */
export function streamTask(deps: TaskStreamDeps): RequestHandler {
  // Many streams may watch one task; their heartbeats share one read per task at a time.
  const readsInFlight = new Map<string, Promise<TaskRecord | null>>();
  const readShared = (taskId: string) => {
    let read = readsInFlight.get(taskId);
    if (!read) {
      read = deps.tasks.findById(taskId).finally(() => readsInFlight.delete(taskId));
      readsInFlight.set(taskId, read);
    }
    return read;
  };

  return async (req, res) => {
    const tenantId = currentTenant(res).tenantId;
    const taskId = String(req.params.task_id);
    // Subscribed before the first read, so a change committed in between is not missed.
    const announced: TaskView[] = [];
    let deliver: (view: TaskView) => void = (view) => void announced.push(view);
    const unsubscribe = deps.taskChanges.subscribe(taskId, (change: TaskChange) => deliver(change.view as TaskView));
    const first = await deps.tasks.findForTenant(tenantId, taskId).catch((error: unknown) => {
      unsubscribe();
      throw error;
    });
    if (!first) {
      unsubscribe();
      throw taskNotFound(taskId);
    }

    res.status(200).set({
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      Connection: 'keep-alive',
      // nginx and similar proxies would otherwise buffer the stream.
      'X-Accel-Buffering': 'no',
    });
    res.flushHeaders();

    const lastEventId = Number(req.get('last-event-id'));
    let sent = { version: Number.isSafeInteger(lastEventId) && lastEventId > 0 ? lastEventId : -1, rank: -1 };
    let closed = false;
    const finish = () => {
      if (closed) return;
      closed = true;
      clearInterval(heartbeat);
      unsubscribe();
      res.end();
    };
    /** Sends the task if it is newer than what the client has; ends the stream after the terminal state. */
    const send = (view: TaskView) => {
      if (closed) return;
      const version = versionOf(view);
      if (version > sent.version && rank(view.status) >= sent.rank) {
        sent = { version, rank: rank(view.status) };
        res.write(formatSseEvent({ id: String(version), event: 'task', data: JSON.stringify(view) }));
      }
      if (isTerminal(view.status) && version <= sent.version) finish();
    };
    const reread = () =>
      readShared(taskId).then(
        (task) => (task && task.tenantId === tenantId ? send(toTaskView(task)) : finish()),
        (error: Error) => (req.log ?? console).warn({ err: error, taskId }, 'task stream read failed'),
      );

    const heartbeat = setInterval(() => {
      if (closed) return;
      res.write(formatSseComment('heartbeat'));
      void reread();
    }, deps.heartbeatMs);
    res.on('close', finish);
    send(toTaskView(first));
    // Changes announced while the first read was on its way, then the live ones as they come.
    for (const view of announced) send(view);
    deliver = send;
  };
}
