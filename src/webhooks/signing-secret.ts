import type { createSettingsRepository } from '../db/settings-repository';
import { randomToken } from '../ids';

const SETTING_KEY = 'webhook_signing_secret';

/**
 * WEBHOOK_SIGNING_SECRET when set; otherwise one generated on first start and stored in Postgres, so
 * every API and worker process (and every restart) signs and checks callback tokens with the same key.
 */
export async function resolveSigningSecret(
  configured: string | undefined,
  settings: ReturnType<typeof createSettingsRepository>,
): Promise<string> {
  return configured ?? settings.getOrCreate(SETTING_KEY, () => randomToken(32));
}
