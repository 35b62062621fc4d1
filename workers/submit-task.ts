import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { TaskRecord, TaskRepository } from '../src/db/task-repository';
import type { Logger } from '../src/logger';
import { MediaCheckError, type MediaReport } from '../src/media/media-precheck';
import type { Enqueuer } from '../src/queue/enqueue';
import { taskJobSchema } from '../src/queue/queues';
import { applyUpstreamUpdate } from '../src/tasks/apply-upstream-update';
import { upstreamExternalId } from '../src/tasks/submission-round';
import type { KlingClient } from '../src/upstream/kling-client';
import type { KlingTask } from '../src/upstream/kling-wire';
import { UpstreamError } from '../src/upstream/upstream-error';
import { retryDelayMs, RetryLater } from './retry-backoff';

export interface SubmitTaskDeps {
  tasks: TaskRepository;
  enqueuer: Enqueuer;
  kling: KlingClient;
  logger: Logger;
  /** The per-task callback URL Kling will call (carries the task's HMAC token and its round). */
  callbackUrlFor(task: Pick<TaskRecord, 'id' | 'resubmissions'>): string;
  maxAttempts: number;
  retryBaseDelayMs: number;
  /**
   * Holds back the whole submit queue (every worker process) for `ms`: when Kling says "too many
   * requests", the next task would be refused too.
   */
  pauseSubmissions(ms: number): Promise<void>;
  /** Counts a task accepted by Kling (the pace behind queued tasks' estimated start). */
  recordSubmitted?: () => Promise<void>;
  /** MEDIA_PRECHECK: reads the task's media URLs and holds them to Kling's rules (absent: off). */
  checkMedia?: (task: TaskRecord) => Promise<MediaReport>;
}

const asUpstreamError = (error: unknown): UpstreamError =>
  error instanceof UpstreamError ? error : new UpstreamError('retryable', 'INTERNAL', (error as Error)?.message ?? String(error));

/**
 * Submits one task to Kling. Safe to run twice: the claim only succeeds while the task is `queued`,
 * and a retry first asks Kling for our external_task_id, so a create whose answer was lost is adopted
 * rather than sent again.
 */
export async function submitTask(deps: SubmitTaskDeps, job: Job, token?: string): Promise<void> {
  const { taskId, tenantId } = taskJobSchema.parse(job.data);
  // The job leaves its tenant's backlog the first time a worker takes it — once, however often it comes
  // back (retries and rate-limit refusals keep their place). BullMQ counts every time a job is taken
  // (`attemptsStarted`, 1 the first time), so this needs no mark of its own and no round trip to set one;
  // a worker that dies between taking a job and releasing it leaves the backlog one too high, which
  // fair-share.ts allows for.
  const firstTake = tenantId !== undefined && Boolean(job.opts.priority) && job.attemptsStarted <= 1;
  const [task] = await Promise.all([deps.tasks.claimForSubmit(taskId), firstTake ? deps.enqueuer.releaseFairShare(tenantId).catch(() => undefined) : undefined]);
  if (!task) {
    const current = await deps.tasks.findById(taskId);
    deps.logger.info({ taskId, status: current?.status }, 'submit skipped: task is no longer queued');
    return;
  }
  const attempt = task.attempts;
  try {
    const { snapshot, adopted } = await findOrCreateUpstream(deps, task);
    await applyUpstreamUpdate(deps, task, snapshot, 'submit', { attempt, adopted });
    await deps.recordSubmitted?.();
    deps.logger.info({ taskId, upstreamTaskId: snapshot.task_id, attempt, adopted }, 'task accepted by Kling');
  } catch (caught) {
    const error = asUpstreamError(caught);
    const detail = { attempt, code: error.code, message: error.message, http_status: error.details.httpStatus };
    // "Too many requests" says nothing about the task: it does not use up an attempt (the whole queue
    // waits it out instead), so a 429 storm delays tasks but never fails them.
    const rateLimited = error.kind === 'retryable' && error.isRateLimit;
    if (error.kind === 'permanent' || (!rateLimited && attempt >= deps.maxAttempts)) {
      const reason = error.kind === 'retryable' ? `gave up after ${attempt} attempts` : error.code === MEDIA_INVALID ? 'media check failed' : 'rejected by Kling';
      await deps.tasks.transition(
        taskId,
        'failed',
        { error: { code: error.code, message: error.message }, statusMessage: reason, completedAt: new Date(), submitInFlight: false },
        { type: 'submit_failed', detail: { ...detail, final: true } },
        { status: 'queued' },
      );
      deps.logger.warn({ taskId, ...detail }, `task failed: ${reason}`);
      throw new UnrecoverableError(`${error.code}: ${error.message}`);
    }
    const delayMs = retryDelayMs(attempt, deps.retryBaseDelayMs, error);
    await deps.tasks.update(taskId, { submitInFlight: false, error: { code: error.code, message: error.message }, refundAttempt: rateLimited });
    await deps.tasks.addEvent(taskId, { type: 'submit_retry', status: 'queued', detail: { ...detail, retry_in_ms: delayMs, rate_limited: rateLimited } });
    deps.logger.info({ taskId, ...detail, delayMs, rateLimited }, 'submit failed; will retry');
    if (rateLimited) {
      // The job goes back to the queue untouched and the queue waits: no task is tried before Kling's delay.
      await deps.pauseSubmissions(delayMs);
      // A prioritized job (fair share) handed back with RateLimitError can sit unnoticed until the worker's
      // next idle poll (seconds); parked as delayed — which uses up no attempt either — it keeps its
      // priority and comes back as soon as the delay ends.
      if (job.opts.priority && token) {
        await job.moveToDelayed(Date.now() + delayMs, token);
        throw new DelayedError();
      }
      throw Worker.RateLimitError();
    }
    throw new RetryLater(delayMs, error);
  }
}

async function findOrCreateUpstream(deps: SubmitTaskDeps, task: TaskRecord): Promise<{ snapshot: KlingTask; adopted: boolean }> {
  // From the second attempt on, an earlier create may have reached Kling without us hearing back.
  const externalId = upstreamExternalId(task);
  if (task.attempts > 1) {
    const existing = await deps.kling.getElementTask(externalId);
    if (existing) return { snapshot: existing, adopted: true };
  }
  await checkMedia(deps, task);
  try {
    const snapshot = await deps.kling.createElement({
      ...task.request,
      callback_url: deps.callbackUrlFor(task),
      external_task_id: externalId,
    });
    return { snapshot, adopted: false };
  } catch (error) {
    // Kling may record a create slowly: a retry's look-up can miss it, and the create then bounces off
    // the duplicate external_task_id. Look once more before calling the task failed.
    if (task.attempts > 1 && error instanceof UpstreamError && error.kind === 'permanent') {
      const existing = await deps.kling.getElementTask(externalId);
      if (existing) return { snapshot: existing, adopted: true };
    }
    throw error;
  }
}

/** The error codes a task shows when its media failed the check: the file breaks a rule, or cannot be read. */
export const MEDIA_INVALID = 'media_invalid';
export const MEDIA_UNAVAILABLE = 'media_unavailable';

/**
 * Right before a create (never before a look-up: a task Kling may already have is not judged again).
 * A broken rule fails the task like a parameter error from Kling would; an unreadable medium is retried
 * like any transient error.
 */
async function checkMedia(deps: SubmitTaskDeps, task: TaskRecord): Promise<void> {
  if (!deps.checkMedia) return;
  try {
    const report = await deps.checkMedia(task);
    if (report.images || report.video) await deps.tasks.addEvent(task.id, { type: 'media_checked', status: 'queued', detail: { ...report } });
  } catch (error) {
    if (!(error instanceof MediaCheckError)) throw error;
    throw error.kind === 'invalid'
      ? new UpstreamError('permanent', MEDIA_INVALID, error.message)
      : new UpstreamError('retryable', MEDIA_UNAVAILABLE, error.message);
  }
}
