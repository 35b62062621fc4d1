import type { Job } from 'bullmq';
import type { DeliveryRepository } from '../src/db/delivery-repository';
import type { Enqueuer } from '../src/queue/enqueue';
import type { Logger } from '../src/logger';
import type { Metrics } from '../src/metrics/metrics';
import { taskJobSchema } from '../src/queue/queues';
import { notificationBody } from '../src/webhooks/notification-payload';
import { sendWebhook } from '../src/webhooks/send-webhook';
import { RetryLater } from './retry-backoff';

export interface NotifyClientDeps {
  deliveries: DeliveryRepository;
  enqueuer: Pick<Enqueuer, 'enqueueNotify'>;
  logger: Logger;
  metrics?: Pick<Metrics, 'webhookDelivery'>;
  webhook: {
    timeoutMs: number;
    allowPrivate: boolean;
    /** Waits before retry 1, 2, …; a notification still failing after the last one is marked failed. */
    retryScheduleMs: readonly number[];
  };
}

/**
 * Delivers a task's pending notifications to the client's callback_url, oldest first; one job per task,
 * so a later status never overtakes an earlier one. A failed attempt holds the line until it succeeds or
 * runs out of retries. Every attempt is recorded in the delivery row and the task's events, in the same
 * statement that reads the next delivery.
 */
export async function notifyClient(deps: NotifyClientDeps, job: Job): Promise<void> {
  const { taskId } = taskJobSchema.parse(job.data);
  // The task's request, the signing secret and the first pending delivery, in one statement.
  const start = await deps.deliveries.jobStart(taskId);
  if (!start) return;
  const task = { request: start.taskRequest };
  const secret = start.signingSecret;
  const schedule = deps.webhook.retryScheduleMs;
  let delivery = start.next;
  while (delivery) {
    const outcome = await sendWebhook({ url: delivery.url, id: delivery.id, body: JSON.stringify(notificationBody(delivery, task)), secret }, deps.webhook);
    const attempt = delivery.attempts + 1;
    const final = !outcome.ok && attempt > schedule.length;
    const retryInMs = outcome.ok || final ? null : schedule[attempt - 1]!;
    const next = await deps.deliveries.recordAttempt(delivery.id, outcome, final, {
      delivery_id: delivery.id,
      attempt,
      outcome: outcome.ok ? 'delivered' : final ? 'failed' : 'retrying',
      http_status: outcome.httpStatus,
      duration_ms: outcome.durationMs,
      error: outcome.error,
      retry_in_ms: retryInMs,
    });
    deps.metrics?.webhookDelivery(outcome.ok ? 'delivered' : final ? 'failed' : 'retrying');
    if (retryInMs !== null) {
      deps.logger.info({ taskId, deliveryId: delivery.id, attempt, error: outcome.error, retryInMs }, 'notification failed; will retry');
      throw new RetryLater(retryInMs, new Error(outcome.error ?? 'delivery failed'));
    }
    if (final) deps.logger.warn({ taskId, deliveryId: delivery.id, attempt, error: outcome.error }, 'notification gave up');
    // `next` was read as the statement began; one stored since is found by `notifyAgainIfPending`.
    delivery = next;
  }
}

/**
 * Runs once a task's notification job has completed, and so no longer exists (removed on completion). A
 * notification stored after the job's last read but before its completion queued no job of its own: its
 * `add` under the task's job id was a no-op while that job was active. Reading after the completion
 * closes that window for good: a notification stored later finds no job under the id and queues its own.
 * (Before, such a notification waited for the maintenance sweep: up to 41 s in the bench's bursts.)
 */
export async function notifyAgainIfPending(deps: Pick<NotifyClientDeps, 'deliveries' | 'enqueuer'>, job: Job): Promise<void> {
  const { taskId } = taskJobSchema.parse(job.data);
  if (await deps.deliveries.nextPending(taskId)) await deps.enqueuer.enqueueNotify(taskId);
}
