import { createServer } from 'node:http';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { Pool } from 'pg';
import { monotonicFactory } from 'ulid';
import { bullPrefix } from '../src/queue/queues';

/**
 * The floor: the least any server can do and still make a submit durable. Bare node:http, JSON.parse of
 * the body, one INSERT of the task row with pg (a named prepared statement, autocommit), one BullMQ add
 * with the service's job options, then a small JSON answer. No auth, no validation, no event row, no
 * framework. Loaded exactly like the API, its throughput is what the hardware allows for this work.
 *
 * Env: PORT, DATABASE_URL, DATABASE_POOL_SIZE, REDIS_URL, QUEUE_PREFIX, FLOOR_TENANT_ID.
 */

const ulid = monotonicFactory();

const INSERT = {
  name: 'floor-insert-task',
  text: 'INSERT INTO tasks (id, tenant_id, external_task_id, request, callback_url) VALUES ($1, $2, $3, $4, $5)',
};

async function main(): Promise<void> {
  const env = process.env;
  const tenantId = env.FLOOR_TENANT_ID;
  if (!env.DATABASE_URL || !env.REDIS_URL || !env.QUEUE_PREFIX || !tenantId) throw new Error('DATABASE_URL, REDIS_URL, QUEUE_PREFIX and FLOOR_TENANT_ID are required');
  // Idle connections are never closed (pg's default closes them after 10 s). The floor is idle while ours
  // is measured, and its whole pool closing at once (20 Postgres backends exiting together) held up the
  // API's answers for 200-300 ms in the middle of ours' half-peak run. The API keeps its own for
  // minutes (src/db/prisma.ts), so neither side's pool now closes during the other's measurement.
  const pool = new Pool({ connectionString: env.DATABASE_URL, max: Number(env.DATABASE_POOL_SIZE ?? 10), idleTimeoutMillis: 0 });
  const redis = new Redis(env.REDIS_URL, { maxRetriesPerRequest: null });
  const queue = new Queue('floor-submit', { connection: redis, prefix: bullPrefix(env.QUEUE_PREFIX) });

  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      void (async () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
        const id = `tsk_${ulid()}`;
        await pool.query({ ...INSERT, values: [id, tenantId, body.external_task_id ?? null, body, body.callback_url ?? null] });
        await queue.add(
          'submit',
          { taskId: id },
          { jobId: id, attempts: 9, backoff: { type: 'exponential', delay: 2_000 }, removeOnComplete: { age: 24 * 3600, count: 10_000 }, removeOnFail: { age: 7 * 24 * 3600 } },
        );
        const answer = JSON.stringify({ task_id: id, status: 'queued' });
        res.writeHead(202, { 'content-type': 'application/json', location: `/v1/tasks/${id}` }).end(answer);
      })().catch((error: Error) => {
        res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: error.message }));
      });
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(Number(env.PORT ?? 0), '127.0.0.1', resolve));
  const address = server.address();
  console.log(JSON.stringify({ msg: 'floor listening', port: typeof address === 'object' && address ? address.port : 0, pid: process.pid }));

  const stop = () => {
    server.close();
    server.closeAllConnections();
    void Promise.allSettled([queue.close(), pool.end()]).then(() => {
      redis.disconnect();
      process.exit(0);
    });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
