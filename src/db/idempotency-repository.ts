import type { Db } from './prisma';

/** Idempotency keys are honoured this long, then forgotten (and purged by the maintenance sweep). */
export const IDEMPOTENCY_KEY_TTL_MS = 24 * 60 * 60_000;

export interface StoredIdempotencyKey {
  requestHash: string;
  taskId: string;
}

export function createIdempotencyRepository(db: Db) {
  const cutoff = () => new Date(Date.now() - IDEMPOTENCY_KEY_TTL_MS);
  return {
    /** The live key, or null; an expired one is deleted so the key can be used afresh. */
    async find(tenantId: string, key: string): Promise<StoredIdempotencyKey | null> {
      const row = await db.idempotencyKey.findUnique({ where: { tenantId_key: { tenantId, key } } });
      if (!row) return null;
      if (row.createdAt < cutoff()) {
        await db.idempotencyKey.deleteMany({ where: { tenantId, key, createdAt: row.createdAt } });
        return null;
      }
      return { requestHash: row.requestHash, taskId: row.taskId };
    },

    async purgeExpired(): Promise<number> {
      const purged = await db.idempotencyKey.deleteMany({ where: { createdAt: { lt: cutoff() } } });
      return purged.count;
    },
  };
}

export type IdempotencyRepository = ReturnType<typeof createIdempotencyRepository>;
