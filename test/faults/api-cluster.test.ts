import { request } from 'node:http';
import { createServer } from 'node:net';
import { validImageTask } from '../helpers/factories';
import { useFaultRig } from '../helpers/fault-rig';
import { sample } from '../helpers/prometheus';
import { waitUntil } from '../helpers/fault-utils';
import { createTenantWithCli, serviceEnv, type ServiceProcess } from '../helpers/service-processes';

/**
 * One request on a connection of its own (agent: false, no keep-alive), so that each may reach another
 * API process: the supervisor hands connections out in turn.
 */
function onNewConnection(url: string, options: { method?: string; headers?: Record<string, string | number> } = {}, body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ...options, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** POSTs JSON on a connection of its own and resolves with the status. */
const postOnNewConnection = async (url: string, auth: string, body: string): Promise<number> =>
  (await onNewConnection(url, { method: 'POST', headers: { authorization: auth, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, body)).status;

/**
 * API_PROCESSES=2: `start:api` supervises two API processes on one port (src/api-cluster.ts). Both
 * answer, one that dies is replaced, SIGTERM stops them all with exit code 0, and one that cannot start
 * stops the API with an error instead of restarting forever.
 */
describe('API cluster mode (API_PROCESSES)', () => {
  const rig = useFaultRig({ fake: { callbackDelayMs: 50 } });
  const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

  const clusterEnv = (extra: Record<string, string> = {}) =>
    serviceEnv({ databaseUrl: rig.db.url, redisUrl: REDIS_URL, klingBaseUrl: rig.fake.baseUrl, extra: { API_PROCESSES: '2', ...extra } });
  const listeningPids = (api: ServiceProcess): number[] => api.logs.filter((line) => line.msg.startsWith('API listening')).map((line) => line.pid as number);
  const isAlive = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };

  test('when two API processes run, then both answer, a killed one is replaced, and SIGTERM stops every one with exit code 0', async () => {
    const api = await rig.procs.spawn('api', clusterEnv());
    await waitUntil(() => listeningPids(api).length === 2, 'two API processes listening', { timeoutMs: 20_000, context: () => api.describe() });
    const [first, second] = listeningPids(api) as [number, number];
    expect(new Set([first, second, api.pid]).size).toBe(3);
    const { auth } = await createTenantWithCli(rig.db.url, 'cluster');

    // A new connection per request (no keep-alive agent): the supervisor hands connections out in turn.
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push(await postOnNewConnection(`${api.url}/v1/tasks`, auth, JSON.stringify(validImageTask())));
    expect(statuses).toEqual(statuses.map(() => 202));
    // Request lines reach us through the processes' shared stdout, a little after the answers.
    const answeredBy = () => new Set(api.logs.filter((line) => line.msg === 'request completed' && (line.req as { url: string }).url === '/v1/tasks').map((line) => line.pid));
    await waitUntil(() => answeredBy().size === 2, 'request lines from both API processes', { timeoutMs: 10_000, context: () => api.describe() });
    expect(answeredBy()).toEqual(new Set([first, second]));
    const { rows } = await rig.pg.query('SELECT count(*)::int AS n FROM tasks');
    expect(rows[0].n).toBe(8);

    process.kill(first, 'SIGKILL');
    await waitUntil(() => listeningPids(api).length === 3, 'a replacement API process listening', { timeoutMs: 20_000, context: () => api.describe() });
    expect(api.logsMatching('an API process exited; starting another')).toEqual([expect.objectContaining({ pid: api.pid, apiProcessPid: first, signal: 'SIGKILL' })]);
    const replacement = listeningPids(api)[2]!;
    expect((await fetch(`${api.url}/healthz`, { headers: { connection: 'close' } })).status).toBe(200);

    expect(await api.stop()).toEqual({ code: 0, signal: null });
    expect([second, replacement].filter(isAlive)).toEqual([]);
  });

  test('when two API processes run, then every scrape of /metrics adds up both, and gauges read from Redis are taken once', async () => {
    const api = await rig.procs.spawn('api', clusterEnv());
    await waitUntil(() => listeningPids(api).length === 2, 'two API processes listening', { timeoutMs: 20_000, context: () => api.describe() });
    const { auth } = await createTenantWithCli(rig.db.url, 'cluster-metrics');
    for (let i = 0; i < 6; i++) expect(await postOnNewConnection(`${api.url}/v1/tasks`, auth, JSON.stringify(validImageTask()))).toBe(202);
    const answeredBy = () => new Set(api.logs.filter((line) => line.msg === 'request completed' && (line.req as { url: string }).url === '/v1/tasks').map((line) => line.pid));
    await waitUntil(() => answeredBy().size === 2, 'creates answered by both API processes', { timeoutMs: 10_000, context: () => api.describe() });

    // No worker runs here: the six submit jobs stay in Redis, the same six whichever process reads them.
    // A create is answered before its job is queued (the enqueuer gathers concurrent creates for a few
    // ms), so the jobs are awaited first; each scrape after that must count six, not twelve.
    const queuedJobs = (exposition: string): number =>
      ['waiting', 'prioritized'].reduce((n, state) => n + sample(exposition, 'kling_tracker_queue_jobs', { queue: 'submit-task', state }), 0);
    await waitUntil(async () => queuedJobs((await onNewConnection(`${api.url}/metrics`)).body) >= 6, 'the six submit jobs queued', { timeoutMs: 10_000, context: () => api.describe() });
    for (let i = 0; i < 4; i++) {
      const scrape = await onNewConnection(`${api.url}/metrics`);
      expect(scrape.status).toBe(200);
      expect(sample(scrape.body, 'kling_tracker_tasks_created_total', { surface: 'v1' })).toBe(6);
      expect(queuedJobs(scrape.body)).toBe(6);
    }
    await api.stop();
  });

  test('when the API processes cannot start (port taken), then the API exits with an error instead of restarting them', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as { port: number }).port;
    try {
      await expect(rig.procs.spawn('api', clusterEnv(), { port, readyTimeoutMs: 20_000 })).rejects.toThrow(/exited \(1\) while starting/);
      const api = rig.procs.all.at(-1)!;
      expect(api.logsMatching('an API process failed to start; stopping the API')).toHaveLength(1);
      expect(api.logsMatching('starting 2 API processes')).toHaveLength(1);
    } finally {
      taken.close();
    }
  });
});
