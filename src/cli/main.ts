import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { announceRevocation } from '../api/api-key-cache';
import { parseConfig } from '../config';
import { migrate } from '../db/migrate';
import { createDb } from '../db/prisma';
import { createTenantRepository } from '../db/tenant-repository';
import { createLogger } from '../logger';
import { createRuntime } from '../runtime';
import { runKeysCommand } from './keys-commands';
import { runTasksCommand } from './tasks-commands';
import { USAGE, UsageError } from './usage';

const REDIS_WAIT_MS = 3_000;

/** A short-lived Redis connection for one announcement; false when Redis does not answer in time. */
async function announceOnce(redisUrl: string, queuePrefix: string): Promise<boolean> {
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: REDIS_WAIT_MS, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    return await announceRevocation(redis, queuePrefix);
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

/** A bad option (unknown, or one without its value) is a usage error like any other: exit 2 with the usage. */
function parseCommandLine(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      allowPositionals: true,
      options: { tenant: { type: 'string' }, status: { type: 'string' }, limit: { type: 'string' }, after: { type: 'string' } },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

async function run(argv: string[]): Promise<unknown> {
  const { positionals, values } = parseCommandLine(argv);
  const [group, command, ...rest] = positionals;
  if (group !== 'keys' && group !== 'tasks') throw new UsageError(group ? `Unknown command "${group}"` : 'No command given');
  const config = parseConfig();
  await migrate(config.databaseUrl);
  if (group === 'keys') {
    // Keys need Postgres; a revocation is also announced on Redis (API processes cache keys).
    const db = createDb(config.databaseUrl, 2);
    try {
      return await runKeysCommand(
        { tenants: createTenantRepository(db), announceRevocation: () => announceOnce(config.redisUrl, config.queuePrefix), warn: (message) => process.stderr.write(`${message}\n`), cacheTtlMs: config.apiKeyCacheTtlMs },
        command,
        rest,
        values,
      );
    } finally {
      await db.$disconnect();
    }
  }
  // Tasks go through the same runtime as the service (a retry queues a job and notifies the client).
  // Its log lines go to stderr: stdout carries only the answer.
  const runtime = await createRuntime(config, createLogger({ level: config.logLevel === 'silent' ? 'silent' : 'warn', destination: process.stderr }));
  try {
    // The queue refuses work until Redis is connected; a short wait for it, and a retry without it still
    // leaves the task queued in Postgres for the maintenance sweep.
    if (runtime.redis.status !== 'ready') await once(runtime.redis, 'ready', { signal: AbortSignal.timeout(REDIS_WAIT_MS) }).catch(() => undefined);
    return await runTasksCommand(runtime, command, rest, values);
  } finally {
    await runtime.close();
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
