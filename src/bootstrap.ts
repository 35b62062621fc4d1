import { ConfigError, parseConfig, type Config } from './config';
import { migrate } from './db/migrate';
import { releaseMemoryWhenIdle } from './idle-memory';
import { createLogger, type Logger } from './logger';
import { createRuntime, isSandbox, type Runtime } from './runtime';

/** Upper bound on a graceful stop; past it the process exits anyway (in-flight jobs are retried elsewhere). */
const SHUTDOWN_TIMEOUT_MS = 30_000;

/** The environment parsed once (see config.ts); a bad one stops the process with the reasons. */
export function loadConfig(): Config {
  try {
    return parseConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }
}

export const processLogger = (config: Config, processName: string): Logger =>
  createLogger({ level: config.logLevel, pretty: config.nodeEnv === 'development' && process.stdout.isTTY, name: processName });

/** Applies pending migrations (under an advisory lock, so concurrent starts are safe) and says which. */
export async function migrateDatabase(config: Config, logger: Logger): Promise<void> {
  const applied = await migrate(config.databaseUrl);
  if (applied.length) logger.info({ migrations: applied }, 'database migrated');
}

/** Shared start-up of every entry point: config, logger, migrations, connections. */
export async function bootstrap(processName: string, config: Config = loadConfig()): Promise<Runtime> {
  const logger = processLogger(config, processName);
  await migrateDatabase(config, logger);
  const runtime = await createRuntime(config, logger);
  if (config.idleGcAfterMs > 0) {
    const idle = releaseMemoryWhenIdle({
      idleMs: config.idleGcAfterMs,
      logger,
      onRelease: (release) => runtime.metrics.idleCollection(release.tookMs / 1000),
    });
    runtime.metrics.watchIdleCollections(idle.collectionsDue);
  }
  if (isSandbox(config)) {
    logger.warn('SANDBOX MODE: no Kling credentials set; a built-in simulator accepts tasks and calls back (set KLING_API_KEY or KLING_ACCESS_KEY/KLING_SECRET_KEY for real Kling)');
  } else {
    logger.info({ klingBaseUrl: config.kling.baseUrl, auth: config.kling.auth.kind }, 'LIVE MODE: tasks are submitted to Kling');
  }
  return runtime;
}

/** On SIGTERM/SIGINT: run `stop` (stop taking work, finish in-flight jobs), then exit 0. */
export function onShutdown(logger: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    setTimeout(() => {
      logger.error('graceful shutdown timed out; exiting');
      process.exit(1);
    }, SHUTDOWN_TIMEOUT_MS).unref();
    stop().then(
      () => process.exit(0),
      (error) => {
        logger.error({ err: error }, 'error during shutdown');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}

export function exitOnStartupError(error: unknown): never {
  console.error(`Start-up failed: ${(error as Error)?.stack ?? String(error)}`);
  process.exit(1);
}
