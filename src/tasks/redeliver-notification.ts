import type { DeliveryRecord, DeliveryRepository } from '../db/delivery-repository';
import type { TaskRecord } from '../db/task-repository';
import { AppError } from '../errors';
import { newDeliveryId } from '../ids';
import type { Enqueuer } from '../queue/enqueue';

export interface RedeliverDeps {
  deliveries: DeliveryRepository;
  enqueuer: Enqueuer;
}

/**
 * Sends the task's latest notification again, as a new delivery with a new webhook-id (a receiver that
 * deduplicates by webhook-id would otherwise drop it), after any still pending.
 */
export async function redeliverLatestNotification(deps: RedeliverDeps, task: TaskRecord): Promise<DeliveryRecord> {
  if (!task.callbackUrl) throw new AppError('NOTHING_TO_REDELIVER', `Task ${task.id} has no callback_url`);
  const delivery = await deps.deliveries.redeliverLatest(task.id, newDeliveryId());
  if (!delivery) throw new AppError('NOTHING_TO_REDELIVER', `Task ${task.id} has not changed status yet, so there is no notification to send again`);
  await deps.enqueuer.enqueueNotify(task.id);
  return delivery;
}
