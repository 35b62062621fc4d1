import { parseArgs } from 'node:util';
import { parseConfig } from '../config';
import { migrate } from '../db/migrate';
import { createDb } from '../db/prisma';
import { createTenantRepository } from '../db/tenant-repository';

const USAGE = `Usage:
  npm run cli -- keys create --tenant <name>   create an API key (prints it once, as JSON)
  npm run cli -- keys list [--tenant <name>]   list API keys (ids and prefixes, never the keys)
  npm run cli -- keys revoke <key_id>          revoke an API key
  npm run cli -- keys rotate-secret --tenant <name>
                                               new webhook signing secret for the tenant (prints it once)`;

class UsageError extends Error {}

/** A bad option (unknown, or --tenant without a value) is a usage error like any other: exit 2 with the usage. */
function parseCommandLine(argv: string[]) {
  try {
    return parseArgs({ args: argv, allowPositionals: true, options: { tenant: { type: 'string' } } });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

async function run(argv: string[]): Promise<unknown> {
  const { positionals, values } = parseCommandLine(argv);
  const [group, command, ...rest] = positionals;
  if (group !== 'keys') throw new UsageError(group ? `Unknown command "${group}"` : 'No command given');
  const config = parseConfig();
  await migrate(config.databaseUrl);
  const db = createDb(config.databaseUrl, 2);
  const tenants = createTenantRepository(db);
  try {
    switch (command) {
      case 'create': {
        if (!values.tenant?.trim()) throw new UsageError('keys create needs --tenant <name>');
        const created = await tenants.createApiKey(values.tenant.trim());
        return { tenant: created.tenant, api_key: created.apiKey, webhook_secret: created.webhookSecret, key_id: created.apiKeyId };
      }
      case 'list':
        return { data: await tenants.listApiKeys(values.tenant) };
      case 'revoke': {
        const keyId = rest[0];
        if (!keyId) throw new UsageError('keys revoke needs a key id (see keys list)');
        if (!(await tenants.revokeApiKey(keyId))) throw new Error(`No active API key ${keyId}`);
        return { revoked: keyId };
      }
      case 'rotate-secret': {
        if (!values.tenant?.trim()) throw new UsageError('keys rotate-secret needs --tenant <name>');
        const rotated = await tenants.rotateWebhookSecret(values.tenant.trim());
        if (!rotated) throw new Error(`No tenant ${values.tenant.trim()}`);
        return { tenant: rotated.tenant, webhook_secret: rotated.webhookSecret };
      }
      default:
        throw new UsageError(command ? `Unknown keys command "${command}"` : 'keys needs a command');
    }
  } finally {
    await db.$disconnect();
  }
}

run(process.argv.slice(2)).then(
  (output) => {
    process.stdout.write(`${JSON.stringify(output, null, 2)}\n`);
  },
  (error: Error) => {
    process.stderr.write(`${error.message}\n${error instanceof UsageError ? `\n${USAGE}\n` : ''}`);
    process.exit(error instanceof UsageError ? 2 : 1);
  },
);
