import { bootstrap, exitOnStartupError, onShutdown } from './bootstrap';
import { startApi, startWorkerProcessors } from './runtime';

/** `npm start`: API and worker in one process. */
async function main(): Promise<void> {
  const runtime = await bootstrap('kling-element-tracker');
  const { server, baseUrl } = await startApi(runtime);
  const publicBaseUrl = runtime.config.publicBaseUrl ?? baseUrl;
  const workers = await startWorkerProcessors(runtime, publicBaseUrl);
  runtime.logger.info({ url: baseUrl, publicBaseUrl, readme: 'README.md' }, `API listening on ${baseUrl}; worker running`);
  onShutdown(runtime.logger, async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await workers.close();
    await runtime.close();
  });
}

main().catch(exitOnStartupError);
