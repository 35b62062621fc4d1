import type { TenantRepository } from '../db/tenant-repository';
import { UsageError } from './usage';

export interface KeysOptions {
  tenant?: string;
}

export interface KeysDeps {
  tenants: TenantRepository;
  /** Tells the API processes to drop cached keys; false when Redis could not be reached. */
  announceRevocation: () => Promise<boolean>;
  /** Where a revocation that could not be announced is explained (stderr). */
  warn: (message: string) => void;
  /** API_KEY_CACHE_TTL_MS, for that explanation. */
  cacheTtlMs: number;
}

const requireTenant = (options: KeysOptions, command: string): string => {
  const tenant = options.tenant?.trim();
  if (!tenant) throw new UsageError(`keys ${command} needs --tenant <name>`);
  return tenant;
};

/** `keys …`: API keys and webhook secrets. Keys and secrets are printed once, when made; stored hashed. */
export async function runKeysCommand(deps: KeysDeps, command: string | undefined, args: string[], options: KeysOptions): Promise<unknown> {
  const { tenants } = deps;
  switch (command) {
    case 'create': {
      const created = await tenants.createApiKey(requireTenant(options, command));
      return { tenant: created.tenant, api_key: created.apiKey, webhook_secret: created.webhookSecret, key_id: created.apiKeyId };
    }
    case 'list':
      return { data: await tenants.listApiKeys(options.tenant) };
    case 'revoke': {
      const keyId = args[0];
      if (!keyId) throw new UsageError('keys revoke needs a key id (see keys list)');
      if (!(await tenants.revokeApiKey(keyId))) throw new Error(`No active API key ${keyId}`);
      if (!(await deps.announceRevocation()) && deps.cacheTtlMs > 0) {
        deps.warn(`Redis could not be reached: API processes that recently saw this key accept it for up to ${deps.cacheTtlMs} ms more (API_KEY_CACHE_TTL_MS)`);
      }
      return { revoked: keyId };
    }
    case 'rotate-secret': {
      const tenant = requireTenant(options, command);
      const rotated = await tenants.rotateWebhookSecret(tenant);
      if (!rotated) throw new Error(`No tenant ${tenant}`);
      return { tenant: rotated.tenant, webhook_secret: rotated.webhookSecret };
    }
    default:
      throw new UsageError(command ? `Unknown keys command "${command}"` : 'keys needs a command');
  }
}
