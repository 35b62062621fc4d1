import type { Redis } from 'ioredis';
import { hashApiKey, type AuthenticatedTenant, type TenantRepository } from '../db/tenant-repository';
import type { RedisSubscriber } from '../live/redis-subscriber';

/**
 * Every request authenticates; looking the key up in Postgres each time was a third of Postgres's work
 * per submit and one of the API's two database round trips. Recognised keys are kept in memory for
 * API_KEY_CACHE_TTL_MS. Revoking a key (`npm run cli -- keys revoke`) announces it on Redis, and every
 * API process forgets its cached keys at once; without Redis the revocation takes effect within the TTL.
 * Unknown keys are never cached, so a new key works at once. Entries are keyed by the key's hash.
 */
export interface ApiKeyCacheOptions {
  ttlMs: number;
  subscriber: RedisSubscriber;
  /** The pub/sub channel revocations are announced on (see revocationChannel). */
  channel: string;
  maxEntries?: number;
}

export const revocationChannel = (queuePrefix: string): string => `${queuePrefix}:api-key-revoked`;

export function createApiKeyCache(tenants: Pick<TenantRepository, 'authenticate'>, options: ApiKeyCacheOptions) {
  const entries = new Map<string, { tenant: AuthenticatedTenant; expiresAt: number }>();
  const maxEntries = options.maxEntries ?? 10_000;
  let listening = false;

  /** Subscribed with the first lookup: processes that never authenticate (workers) never listen. */
  const listenForRevocations = () => {
    if (listening) return;
    listening = true;
    // A reconnect may have missed a revocation: forget everything then too.
    options.subscriber.listen(options.channel, () => entries.clear(), { onReconnect: () => entries.clear() });
  };

  return {
    async authenticate(apiKey: string): Promise<AuthenticatedTenant | null> {
      if (options.ttlMs <= 0) return tenants.authenticate(apiKey);
      listenForRevocations();
      const hash = hashApiKey(apiKey);
      const cached = entries.get(hash);
      if (cached && cached.expiresAt > Date.now()) return cached.tenant;
      const tenant = await tenants.authenticate(apiKey);
      entries.delete(hash);
      if (tenant) {
        if (entries.size >= maxEntries) entries.delete(entries.keys().next().value!);
        entries.set(hash, { tenant, expiresAt: Date.now() + options.ttlMs });
      }
      return tenant;
    },
  };
}

export type ApiKeyCache = ReturnType<typeof createApiKeyCache>;

/** Tells every API process to forget its cached keys (best-effort: the TTL bounds a missed announcement). */
export async function announceRevocation(redis: Redis, queuePrefix: string): Promise<boolean> {
  try {
    await redis.publish(revocationChannel(queuePrefix), 'revoked');
    return true;
  } catch {
    return false;
  }
}
