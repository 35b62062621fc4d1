import type { Db } from './prisma';

export interface DeliveryRecord {
  id: string;
  taskId: string;
  url: string;
  payload: unknown;
  state: 'pending' | 'delivered' | 'failed';
  attempts: number;
  createdAt: Date;
}

export interface AttemptOutcome {
  ok: boolean;
  httpStatus: number | null;
  error: string | null;
}

export function createDeliveryRepository(db: Db) {
  return {
    /** The task's oldest undelivered notification: deliveries go out one at a time, in order. */
    async nextPending(taskId: string): Promise<DeliveryRecord | null> {
      const row = await db.webhookDelivery.findFirst({ where: { taskId, state: 'pending' }, orderBy: { id: 'asc' } });
      return row && { ...row, payload: row.payload };
    },

    /** Records one attempt; `final` marks a failure that will not be retried. */
    async recordAttempt(id: string, outcome: AttemptOutcome, final: boolean): Promise<DeliveryRecord> {
      const row = await db.webhookDelivery.update({
        where: { id },
        data: {
          attempts: { increment: 1 },
          lastStatus: outcome.httpStatus,
          lastError: outcome.error,
          ...(outcome.ok ? { state: 'delivered', deliveredAt: new Date() } : final ? { state: 'failed' } : {}),
        },
      });
      return { ...row, payload: row.payload };
    },

    /** Tasks with notifications waiting since before `before` (their job may have been lost). */
    async tasksWithPendingSince(before: Date, limit: number): Promise<string[]> {
      const rows = await db.webhookDelivery.findMany({
        where: { state: 'pending', createdAt: { lt: before } },
        distinct: ['taskId'],
        select: { taskId: true },
        take: limit,
      });
      return rows.map((row) => row.taskId);
    },

    /** Queues the latest notification of a task again (POST /v1/tasks/:id/redeliver). */
    async redeliverLatest(taskId: string, newId: string): Promise<DeliveryRecord | null> {
      const latest = await db.webhookDelivery.findFirst({ where: { taskId }, orderBy: { id: 'desc' } });
      if (!latest) return null;
      const row = await db.webhookDelivery.create({
        data: { id: newId, taskId, url: latest.url, payload: latest.payload ?? {} },
      });
      return { ...row, payload: row.payload };
    },
  };
}

export type DeliveryRepository = ReturnType<typeof createDeliveryRepository>;
