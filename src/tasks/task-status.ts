export const TASK_STATUSES = ['queued', 'submitted', 'processing', 'succeed', 'failed', 'canceled'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

export const TERMINAL_STATUSES: readonly TaskStatus[] = ['succeed', 'failed', 'canceled'];

export const isTerminal = (status: TaskStatus): boolean => TERMINAL_STATUSES.includes(status);

/**
 * Status only moves forward along queued → submitted → processing → terminal. Updates are applied
 * with "WHERE status IN (statuses that may precede the new one)", so a stale, duplicate or
 * out-of-order report matches no row and changes nothing.
 */
const RANK: Record<TaskStatus, number> = { queued: 0, submitted: 1, processing: 2, succeed: 3, failed: 3, canceled: 3 };

export function statusesBefore(next: TaskStatus): TaskStatus[] {
  return TASK_STATUSES.filter((status) => RANK[status] < RANK[next]);
}
