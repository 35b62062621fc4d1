import cluster, { type Worker } from 'node:cluster';
import type { Logger } from './logger';
import { serveClusterMetrics } from './metrics/cluster-metrics';

/** Upper bound on the API processes' graceful stop, as for a single process (see bootstrap.ts). */
const STOP_TIMEOUT_MS = 30_000;

/**
 * API_PROCESSES > 1: this process only supervises; `count` API processes share its listening port
 * (node:cluster hands connections out in turn). A Node process runs JavaScript on one core, so under load
 * one API process is the bottleneck while Postgres and Redis have cores to spare; see bench/README.md for
 * when it pays. Each process has its own connection pools (DATABASE_POOL_SIZE each) and its own
 * /metrics registry; a scrape of /metrics gets all of them added up (metrics/cluster-metrics.ts).
 *
 * A process that dies after it was listening is replaced; one that dies before (bad config, database
 * unreachable at start) stops the whole API with an error, as a single process would, so a supervisor
 * sees the failure instead of a restart loop. SIGTERM/SIGINT are passed on and the supervisor exits once
 * every API process has stopped.
 */
export function superviseApiProcesses(count: number, logger: Logger): void {
  const listened = new WeakSet<Worker>();
  let stopping = false;

  const start = (): void => {
    const worker = cluster.fork();
    worker.once('listening', () => listened.add(worker));
  };

  const stop = (exitCode: number): void => {
    stopping = true;
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
    setTimeout(() => {
      logger.error('API processes did not stop in time; exiting');
      process.exit(1);
    }, STOP_TIMEOUT_MS).unref();
    const exitWhenAllStopped = (): void => {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(exitCode);
    };
    cluster.on('exit', exitWhenAllStopped);
    exitWhenAllStopped();
  };

  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return;
    if (!listened.has(worker)) {
      logger.error({ apiProcessPid: worker.process.pid, code, signal }, 'an API process failed to start; stopping the API');
      stop(1);
      return;
    }
    logger.error({ apiProcessPid: worker.process.pid, code, signal }, 'an API process exited; starting another');
    start();
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (stopping) return;
      logger.info({ signal }, 'shutting down the API processes');
      stop(0);
    });
  }

  serveClusterMetrics();
  logger.info({ processes: count }, `starting ${count} API processes`);
  for (let i = 0; i < count; i++) start();
}
