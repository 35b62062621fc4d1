import { Prisma } from '../generated/prisma/client';

/** Prisma codes meaning "the database cannot be reached right now" (not "the query is wrong"). */
const UNAVAILABLE_PRISMA_CODES = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024']);
/** Postgres SQLSTATEs and socket errors seen while a server is stopping, starting or gone. */
const UNAVAILABLE_DRIVER_CODES = new Set(['57P01', '57P02', '57P03', '08000', '08001', '08003', '08006', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT']);
// "…is not queryable": pg's answer (a plain Error, no code) to a query on a pooled client whose connection
// just died, e.g. a transaction's next statement while Postgres shuts down. "Unable to start a transaction
// in the given time" (P2028): every pooled connection stayed busy past maxWait, i.e. the pool is exhausted.
const CONNECTION_LOST =
  /Connection terminated|Can't reach database server|server closed the connection|connection timeout|timeout exceeded when trying to connect|encountered a connection error and is not queryable|Unable to start a transaction in the given time/i;

/**
 * True when `error` says Postgres is unreachable (down, restarting, pool exhausted): such failures are
 * answered 503 with Retry-After, and jobs hitting them are retried later.
 */
export function isDatabaseUnavailable(error: unknown, depth = 0): boolean {
  if (!error || typeof error !== 'object' || depth > 4) return false;
  if (error instanceof Prisma.PrismaClientInitializationError) return true;
  const { code, message, cause, meta } = error as { code?: unknown; message?: unknown; cause?: unknown; meta?: { driverAdapterError?: unknown } };
  if (error instanceof Prisma.PrismaClientKnownRequestError && UNAVAILABLE_PRISMA_CODES.has(error.code)) return true;
  if (typeof code === 'string' && UNAVAILABLE_DRIVER_CODES.has(code)) return true;
  if ((cause as { kind?: string } | undefined)?.kind === 'DatabaseNotReachable') return true;
  if (typeof message === 'string' && CONNECTION_LOST.test(message)) return true;
  return isDatabaseUnavailable(cause, depth + 1) || isDatabaseUnavailable(meta?.driverAdapterError, depth + 1);
}
