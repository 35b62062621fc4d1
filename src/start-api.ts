import cluster from 'node:cluster';
import { superviseApiProcesses } from './api-cluster';
import { bootstrap, exitOnStartupError, loadConfig, migrateDatabase, onShutdown, processLogger } from './bootstrap';
import type { Config } from './config';
import { startApi } from './runtime';

const PROCESS_NAME = 'kling-element-tracker-api';

/** `npm run start:api`: the HTTP API alone (scale it apart from workers). */
async function main(config: Config): Promise<void> {
  const runtime = await bootstrap(PROCESS_NAME, config);
  const { server, baseUrl } = await startApi(runtime);
  runtime.logger.info({ url: baseUrl }, `API listening on ${baseUrl}`);
  onShutdown(runtime.logger, async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await runtime.close();
  });
}

/** API_PROCESSES > 1: migrate once, then supervise that many API processes (api-cluster.ts). */
async function supervise(config: Config): Promise<void> {
  const logger = processLogger(config, PROCESS_NAME);
  await migrateDatabase(config, logger);
  superviseApiProcesses(config.apiProcesses, logger);
}

const config = loadConfig();
(cluster.isPrimary && config.apiProcesses > 1 ? supervise(config) : main(config)).catch(exitOnStartupError);
