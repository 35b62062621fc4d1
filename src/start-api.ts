import { bootstrap, exitOnStartupError, onShutdown } from './bootstrap';
import { startApi } from './runtime';

/** `npm run start:api`: the HTTP API alone (scale it apart from workers). */
async function main(): Promise<void> {
  const runtime = await bootstrap('kling-element-tracker-api');
  const { server, baseUrl } = await startApi(runtime);
  runtime.logger.info({ url: baseUrl }, `API listening on ${baseUrl}`);
  onShutdown(runtime.logger, async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await runtime.close();
  });
}

main().catch(exitOnStartupError);
