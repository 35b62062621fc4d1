import type { TaskRecord } from '../db/task-repository';
import { isTerminal } from '../tasks/task-status';
import type { TaskChangeBus } from './task-change-bus';

/** RFC 7240 `Prefer: wait=N` is honoured up to this many seconds (as Replicate does). */
export const MAX_PREFER_WAIT_S = 60;

/**
 * The seconds a `Prefer` header asks to wait (capped), or undefined when it asks for none. Preferences
 * that are not understood are ignored, as RFC 7240 says.
 */
export function preferredWaitSeconds(prefer: string | undefined): number | undefined {
  const match = /(?:^|[,;\s])wait\s*=\s*"?(\d{1,6})"?(?=$|[,;\s])/i.exec(prefer ?? '');
  if (!match?.[1]) return undefined;
  return Math.min(Number(match[1]), MAX_PREFER_WAIT_S);
}

/**
 * Holds until the task is terminal or `timeoutMs` has passed, then gives the task as it stands. Woken by
 * announced changes only (no polling): it reads the task once at the start, once per announcement and
 * once at the end.
 */
export async function waitForTask(changes: TaskChangeBus, taskId: string, read: () => Promise<TaskRecord | null>, timeoutMs: number): Promise<TaskRecord | null> {
  let wake: () => void = () => undefined;
  let woken = false;
  // Subscribed before the first read, so a change committed in between is not missed.
  const unsubscribe = changes.subscribe(taskId, () => {
    woken = true;
    wake();
  });
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      const task = await read();
      if (!task || isTerminal(task.status)) return task;
      const left = deadline - Date.now();
      if (left <= 0) return task;
      if (!woken) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      woken = false;
    }
  } finally {
    unsubscribe();
  }
}
