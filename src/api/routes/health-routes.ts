import express, { type Router } from 'express';
import type { Logger } from '../../logger';

export type ReadinessCheck = () => Promise<void>;

const CHECK_TIMEOUT_MS = 2_000;

class CheckTimedOut extends Error {}

/**
 * 'ok', or why not. The answer is public (load balancers probe it unauthenticated), so a failure's own
 * message, which may name hosts, ports or users, goes only to the log.
 */
async function runCheck(name: string, check: ReadinessCheck, logger: Logger): Promise<'ok' | string> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      check(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new CheckTimedOut(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
      }),
    ]);
    return 'ok';
  } catch (error) {
    logger.warn({ check: name, err: error }, 'readiness check failed');
    return error instanceof CheckTimedOut ? `unavailable: ${error.message}` : 'unavailable: the check failed (see the log)';
  } finally {
    clearTimeout(timer);
  }
}

/** /healthz: the process answers. /readyz: its dependencies answer too (503 naming the one that does not). */
export function healthRoutes(checks: Record<string, ReadinessCheck>, logger: Logger): Router {
  const router = express.Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    const names = Object.keys(checks);
    const results = await Promise.all(names.map((name) => runCheck(name, checks[name]!, logger)));
    const report = Object.fromEntries(names.map((name, i) => [name, results[i]]));
    const ready = results.every((result) => result === 'ok');
    res.status(ready ? 200 : 503).json({ status: ready ? 'ok' : 'unavailable', checks: report });
  });
  return router;
}
