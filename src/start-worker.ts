import { bootstrap, exitOnStartupError, onShutdown } from './bootstrap';
import { startWorkerProcessors } from './runtime';

/** `npm run start:worker`: the queue workers alone. Kling's callbacks go to the API at PUBLIC_BASE_URL. */
async function main(): Promise<void> {
  const runtime = await bootstrap('kling-element-tracker-worker');
  const publicBaseUrl = runtime.config.publicBaseUrl ?? `http://127.0.0.1:${runtime.config.port}`;
  const workers = await startWorkerProcessors(runtime, publicBaseUrl);
  runtime.logger.info({ publicBaseUrl, concurrency: runtime.config.kling.concurrency }, 'worker running');
  onShutdown(runtime.logger, async () => {
    await workers.close();
    await runtime.close();
  });
}

main().catch(exitOnStartupError);
