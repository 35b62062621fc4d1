import type { Redis } from 'ioredis';
import { hashApiKey, type AuthenticatedTenant, type TenantRepository } from '../db/tenant-repository';
import type { Logger } from '../logger';

/**
 * Every request authenticates; looking the key up in Postgres each time was a third of Postgres's work
 * per submit and one of the API's two database round trips. Recognised keys are kept in memory for
 * API_KEY_CACHE_TTL_MS. Revoking a key (`npm run cli -- keys revoke`) announces it on Redis, and every
 * API process forgets its cached keys at once; without Redis the revocation takes effect within the TTL.
 * Unknown keys are never cached, so a new key works at once. Entries are keyed by the key's hash.
 */
export interface ApiKeyCacheOptions {
  ttlMs: number;
  redis: Redis;
  /** The pub/sub channel revocations are announced on (see revocationChannel). */
  channel: string;
  logger: Logger;
  maxEntries?: number;
}

export const revocationChannel = (queuePrefix: string): string => `${queuePrefix}:api-key-revoked`;

export function createApiKeyCache(tenants: Pick<TenantRepository, 'authenticate'>, options: ApiKeyCacheOptions) {
  const entries = new Map<string, { tenant: AuthenticatedTenant; expiresAt: number }>();
  const maxEntries = options.maxEntries ?? 10_000;
  let subscriber: Redis | undefined;

  /** Subscribed with the first lookup: processes that never authenticate (workers) open no connection. */
  const listenForRevocations = () => {
    if (subscriber) return;
    subscriber = options.redis.duplicate();
    subscriber.on('error', (error) => options.logger.debug({ err: error }, 'api key revocation subscriber error'));
    subscriber.on('message', () => entries.clear());
    // A reconnect may have missed a revocation: forget everything then too.
    subscriber.on('ready', () => entries.clear());
    subscriber.subscribe(options.channel).catch((error: Error) => options.logger.warn({ err: error }, 'could not subscribe to api key revocations'));
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
    async close(): Promise<void> {
      entries.clear();
      const closing = subscriber;
      subscriber = undefined;
      if (!closing) return;
      if (closing.status === 'ready') await closing.quit().catch(() => undefined);
      else closing.disconnect();
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
