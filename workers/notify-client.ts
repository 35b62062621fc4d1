import type { Job } from 'bullmq';
import type { DeliveryRepository } from '../src/db/delivery-repository';
import type { TaskRepository } from '../src/db/task-repository';
import type { TenantRepository } from '../src/db/tenant-repository';
import type { Logger } from '../src/logger';
import type { Metrics } from '../src/metrics/metrics';
import { taskJobSchema } from '../src/queue/queues';
import { notificationBody } from '../src/webhooks/notification-payload';
import { sendWebhook } from '../src/webhooks/send-webhook';
import { RetryLater } from './retry-backoff';

export interface NotifyClientDeps {
  tasks: TaskRepository;
  deliveries: DeliveryRepository;
  tenants: TenantRepository;
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
  const task = await deps.tasks.findById(taskId);
  if (!task) return;
  // Kling-style notifications (tasks created on the Kling-compatible surface) are unsigned, as Kling's are.
  const secret = task.callbackFormat === 'standard' ? ((await deps.tenants.webhookSecretOf(task.tenantId)) ?? undefined) : undefined;
  const schedule = deps.webhook.retryScheduleMs;
  let delivery = await deps.deliveries.nextPending(taskId);
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
    // A last look before the job ends: `next` was read as the statement began, before its own commit, and
    // a notification stored meanwhile queued no job of its own (this task's job was still running).
    delivery = next ?? (await deps.deliveries.nextPending(taskId));
  }
}
