import type { TaskRecord } from '../db/task-repository';
import type { KlingTask } from '../upstream/kling-wire';

/*
 * A task reaches Kling once per round. Round 0 is the client's submission; an operator's retry of a failed
 * task (`tasks retry`) starts the next one. Each round is a separate Kling task under its own
 * external_task_id, so the look-up before a re-send finds this round's task and never the failed one, and
 * whatever Kling still says about an earlier round (a late callback) is recognised and ignored.
 */

type RoundOf = Pick<TaskRecord, 'id' | 'resubmissions'>;

/** The external_task_id Kling knows this round by: the task id, then `<task id>_r<round>`. */
export const upstreamExternalId = (task: RoundOf): string => (task.resubmissions === 0 ? task.id : `${task.id}_r${task.resubmissions}`);

/** The `round` query parameter of a callback URL: absent for round 0, so first-round URLs stay as they were. */
export const callbackRoundParam = (task: RoundOf): string => (task.resubmissions === 0 ? '' : `&round=${task.resubmissions}`);

/**
 * Why Kling's report is about another round than the task's current one, or null when it is about this
 * one. `callbackRound` is the round named by the callback URL (undefined for polls and submit answers).
 */
export function otherRoundReason(task: Pick<TaskRecord, 'id' | 'resubmissions' | 'upstreamTaskId'>, snapshot: KlingTask, callbackRound?: number): string | null {
  if (callbackRound !== undefined && callbackRound !== task.resubmissions) return `callback from round ${callbackRound}; the task is in round ${task.resubmissions}`;
  const external = snapshot.task_info?.external_task_id;
  if (external && external !== upstreamExternalId(task)) return `report about external_task_id ${external}, not this round's ${upstreamExternalId(task)}`;
  if (task.upstreamTaskId && snapshot.task_id !== task.upstreamTaskId) return 'callback names another upstream task';
  return null;
}
