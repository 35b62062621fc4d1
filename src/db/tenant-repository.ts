import { createHash, randomBytes } from 'node:crypto';
import { newApiKeyId, newTenantId, randomToken } from '../ids';
import { sqlPool, type Db } from './prisma';
import { prepared } from './sql';

export interface AuthenticatedTenant {
  tenantId: string;
  tenantName: string;
  apiKeyId: string;
}

const API_KEY_PREFIX = 'ket_';

const AUTHENTICATE_SQL = `SELECT k.id, k.tenant_id, t.name AS tenant_name, k.revoked_at IS NOT NULL AS revoked
  FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.key_hash = $1`;

/** Keys are stored only as SHA-256: high-entropy random keys need no slow hash, and lookup stays an index hit. */
export const hashApiKey = (apiKey: string): string => createHash('sha256').update(apiKey).digest('hex');

/** Standard Webhooks secrets are `whsec_` + standard base64 of 32 random bytes. */
export const newWebhookSecret = (): string => `whsec_${randomBytes(32).toString('base64')}`;

export function createTenantRepository(db: Db) {
  return {
    /** Creates the tenant when new, then a fresh API key; the key is returned once and never stored. */
    async createApiKey(tenantName: string): Promise<{ tenant: string; apiKey: string; apiKeyId: string; webhookSecret: string }> {
      const tenant = await db.tenant.upsert({
        where: { name: tenantName },
        update: {},
        create: { id: newTenantId(), name: tenantName, webhookSecret: newWebhookSecret() },
      });
      const apiKey = `${API_KEY_PREFIX}${randomToken(32)}`;
      const apiKeyId = newApiKeyId();
      await db.apiKey.create({
        data: { id: apiKeyId, tenantId: tenant.id, prefix: apiKey.slice(0, 10), keyHash: hashApiKey(apiKey) },
      });
      return { tenant: tenant.name, apiKey, apiKeyId, webhookSecret: tenant.webhookSecret };
    },

    /** Every request runs this: one prepared statement, no ORM (no cache either: a revoked key stops at once). */
    async authenticate(apiKey: string): Promise<AuthenticatedTenant | null> {
      const { rows } = await sqlPool(db).query<{ id: string; tenant_id: string; tenant_name: string; revoked: boolean }>(
        prepared(AUTHENTICATE_SQL, [hashApiKey(apiKey)]),
      );
      const key = rows[0];
      if (!key || key.revoked) return null;
      return { tenantId: key.tenant_id, tenantName: key.tenant_name, apiKeyId: key.id };
    },

    async listApiKeys(tenantName?: string) {
      const keys = await db.apiKey.findMany({
        where: tenantName ? { tenant: { name: tenantName } } : {},
        include: { tenant: true },
        orderBy: { createdAt: 'asc' },
      });
      return keys.map((key) => ({
        id: key.id,
        tenant: key.tenant.name,
        prefix: key.prefix,
        created_at: key.createdAt.toISOString(),
        revoked_at: key.revokedAt?.toISOString() ?? null,
      }));
    },

    /** A new webhook secret for the tenant; deliveries from now on are signed with it. */
    async rotateWebhookSecret(tenantName: string): Promise<{ tenant: string; webhookSecret: string } | null> {
      const rotated = await db.tenant.updateMany({ where: { name: tenantName }, data: { webhookSecret: newWebhookSecret() } });
      if (rotated.count === 0) return null;
      const tenant = await db.tenant.findUniqueOrThrow({ where: { name: tenantName } });
      return { tenant: tenant.name, webhookSecret: tenant.webhookSecret };
    },

    /** Tenant names by id, for operators' listings. */
    async namesById(tenantIds: readonly string[]): Promise<Map<string, string>> {
      const rows = await db.tenant.findMany({ where: { id: { in: [...new Set(tenantIds)] } }, select: { id: true, name: true } });
      return new Map(rows.map((row) => [row.id, row.name]));
    },

    async idOf(tenantName: string): Promise<string | null> {
      const tenant = await db.tenant.findUnique({ where: { name: tenantName }, select: { id: true } });
      return tenant?.id ?? null;
    },

    /** Returns false when no such active key exists. */
    async revokeApiKey(apiKeyId: string): Promise<boolean> {
      const revoked = await db.apiKey.updateMany({ where: { id: apiKeyId, revokedAt: null }, data: { revokedAt: new Date() } });
      return revoked.count > 0;
    },
  };
}

export type TenantRepository = ReturnType<typeof createTenantRepository>;
