import type { RequestHandler } from 'express';
import type { TaskRepository } from '../../db/task-repository';
import { taskNotFound } from '../../errors';
import type { TaskChangeBus } from '../../live/task-change-bus';
import { isTerminal } from '../../tasks/task-status';
import { toTaskView } from '../../tasks/task-view';
import { currentTenant } from '../authenticate';

export interface TaskStreamDeps {
  tasks: TaskRepository;
  taskChanges: TaskChangeBus;
  /** A comment line this often keeps proxies from closing an idle stream; the task is re-read then too. */
  heartbeatMs: number;
}

/**
 * GET /v1/tasks/:task_id/stream — Server-Sent Events. At once the task as it stands, then one `task`
 * event (the same JSON as GET) per status change, committed by any process; the stream ends after the
 * terminal state. Event ids are the ids of the status changes in the task's timeline, so a client that
 * reconnects with `Last-Event-ID` gets the task again only if it has moved on since. States that pass
 * faster than one read (e.g. submitted → processing within a millisecond) reach the stream as the later
 * one; the terminal state always does.
 */
export function streamTask(deps: TaskStreamDeps): RequestHandler {
  return async (req, res) => {
    const tenantId = currentTenant(res).tenantId;
    const taskId = String(req.params.task_id);
    const first = await deps.tasks.findForTenant(tenantId, taskId);
    if (!first) throw taskNotFound(taskId);

    res.status(200).set({
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      Connection: 'keep-alive',
      // nginx and similar proxies would otherwise buffer the stream.
      'X-Accel-Buffering': 'no',
    });
    res.flushHeaders();

    const lastEventId = Number(req.get('last-event-id'));
    let sentId = Number.isSafeInteger(lastEventId) && lastEventId > 0 ? lastEventId : -1;
    let closed = false;
    let reading: Promise<void> | undefined;
    let again = false;

    const finish = () => {
      if (closed) return;
      closed = true;
      clearInterval(heartbeat);
      unsubscribe();
      res.end();
    };
    /** Reads the task and sends it if its state is newer than the last one sent; ends after the terminal state. */
    const sendIfChanged = async () => {
      const [task, transitionId] = await Promise.all([deps.tasks.findForTenant(tenantId, taskId), deps.tasks.latestTransitionId(taskId)]);
      if (closed) return;
      if (!task) return finish();
      if (transitionId > sentId) {
        sentId = transitionId;
        res.write(`id: ${transitionId}\nevent: task\ndata: ${JSON.stringify(toTaskView(task))}\n\n`);
      }
      if (isTerminal(task.status)) finish();
    };
    /** One read at a time; announcements during a read cause one more read after it. */
    const refresh = () => {
      if (closed) return;
      if (reading) {
        again = true;
        return;
      }
      reading = sendIfChanged()
        .catch((error: Error) => (req.log ?? console).warn({ err: error, taskId }, 'task stream read failed'))
        .finally(() => {
          reading = undefined;
          if (again) {
            again = false;
            refresh();
          }
        });
    };

    // Subscribed before the first read, so a change committed in between is not missed.
    const unsubscribe = deps.taskChanges.subscribe(taskId, refresh);
    const heartbeat = setInterval(() => {
      if (closed) return;
      res.write(': heartbeat\n\n');
      // Announcements are best-effort: the heartbeat also catches a change whose announcement was lost.
      refresh();
    }, deps.heartbeatMs);
    res.on('close', finish);
    refresh();
  };
}
