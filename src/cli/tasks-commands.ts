import { z } from 'zod';
import type { TaskRecord } from '../db/task-repository';
import type { Runtime } from '../runtime';
import { retryFailedTask } from '../tasks/retry-task';
import { TASK_STATUSES } from '../tasks/task-status';
import { toTaskEventView, toTaskView } from '../tasks/task-view';
import { UsageError } from './usage';

export interface TasksOptions {
  status?: string;
  tenant?: string;
  limit?: string;
  after?: string;
}

const listOptionsSchema = z.object({
  status: z.enum(TASK_STATUSES, { error: `--status must be one of ${TASK_STATUSES.join(', ')}` }).optional(),
  tenant: z.string().trim().min(1, '--tenant must not be blank').optional(),
  limit: z.coerce.number().int('--limit must be a whole number').min(1, '--limit must be at least 1').max(100, '--limit must be at most 100').default(20),
  after: z.string().regex(/^tsk_[0-9A-Z]{26}$/, '--after must be a task id (next_cursor of the previous page)').optional(),
});

function parseListOptions(options: TasksOptions) {
  const parsed = listOptionsSchema.safeParse(options);
  if (!parsed.success) throw new UsageError(parsed.error.issues.map((issue) => issue.message).join('; '));
  return parsed.data;
}

const requireTaskId = (args: string[], command: string): string => {
  if (!args[0]) throw new UsageError(`tasks ${command} needs a task id`);
  return args[0];
};

/** `tasks …`: what an operator needs across tenants (the API shows a tenant only its own tasks). */
export async function runTasksCommand(runtime: Runtime, command: string | undefined, args: string[], options: TasksOptions): Promise<unknown> {
  const { tasks, tenants } = runtime;
  const withTenant = async (records: TaskRecord[]) => {
    const names = await tenants.namesById(records.map((task) => task.tenantId));
    return records.map((task) => ({ tenant: names.get(task.tenantId) ?? null, ...toTaskView(task) }));
  };
  switch (command) {
    case 'show': {
      const taskId = requireTaskId(args, command);
      const task = await tasks.findById(taskId);
      if (!task) throw new Error(`No task ${taskId}`);
      const [view] = await withTenant([task]);
      return { ...view, events: (await tasks.listEvents(task.id)).map(toTaskEventView) };
    }
    case 'list': {
      const query = parseListOptions(options);
      const tenantId = query.tenant === undefined ? undefined : await tenants.idOf(query.tenant);
      if (tenantId === null) throw new Error(`No tenant ${query.tenant}`);
      const { tasks: page, hasMore } = await tasks.list(tenantId, { status: query.status, limit: query.limit, afterId: query.after });
      return { data: await withTenant(page), next_cursor: hasMore ? (page.at(-1)?.id ?? null) : null };
    }
    case 'retry': {
      const { task, queued } = await retryFailedTask(runtime, requireTaskId(args, command), 'operator (cli)');
      const [view] = await withTenant([task]);
      return {
        ...view,
        ...(queued ? {} : { note: 'Redis could not be reached: the task is queued in Postgres and the maintenance sweep will queue its submit' }),
      };
    }
    default:
      throw new UsageError(command ? `Unknown tasks command "${command}"` : 'tasks needs a command');
  }
}
