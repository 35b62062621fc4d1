import { bootstrap, exitOnStartupError, onShutdown } from './bootstrap';
import { startMetricsServer } from './metrics/metrics-server';
import { startWorkerProcessors } from './runtime';

/** `npm run start:worker`: the queue workers alone. Kling's callbacks go to the API at PUBLIC_BASE_URL. */
async function main(): Promise<void> {
  const runtime = await bootstrap('kling-element-tracker-worker');
  const publicBaseUrl = runtime.config.publicBaseUrl ?? `http://127.0.0.1:${runtime.config.port}`;
  const workers = await startWorkerProcessors(runtime, publicBaseUrl);
  const { metricsPort } = runtime.config.worker;
  const metricsServer = metricsPort ? await startMetricsServer(runtime.metrics, metricsPort) : undefined;
  runtime.logger.info({ publicBaseUrl, concurrency: runtime.config.kling.concurrency, metricsPort }, 'worker running');
  onShutdown(runtime.logger, async () => {
    metricsServer?.closeAllConnections();
    metricsServer?.close();
    await workers.close();
    await runtime.close();
  });
}

main().catch(exitOnStartupError);
