import { uniqueExternalId, validImageTask } from '../helpers/factories';
import { waitUntil } from '../helpers/fault-utils';
import { startTestService, type TestService } from '../helpers/test-service';

/** Posts `count` tasks for one tenant over `parallel` connections. */
async function burst(service: TestService, auth: string, count: number, parallel = 16): Promise<string[]> {
  const ids: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < count) {
        next++;
        const created = await service.http.post('/v1/tasks').set('authorization', auth).send(validImageTask({ external_task_id: uniqueExternalId('burst') }));
        expect(created.status).toBe(202);
        ids.push(created.body.task_id);
      }
    }),
  );
  return ids;
}

describe('fairness between tenants: round-robin dispatch', () => {
  let service: TestService;

  beforeAll(async () => {
    service = await startTestService({ env: { KLING_RATE_LIMIT_MAX: '200', KLING_CONCURRENCY: '4' } });
  });
  afterAll(() => service.stop());

  test('when tenant A has 2,000 tasks waiting and tenant B submits one, then B\'s reaches Kling among the first few', async () => {
    const a = await service.createTenant();
    const b = await service.createTenant();
    await service.runtime.queues.submit.pause();
    await burst(service, a.auth, 2_000);
    const single = await service.http.post('/v1/tasks').set('authorization', b.auth).send(validImageTask({ external_task_id: uniqueExternalId('b') }));
    const creates = () => service.fake!.creates().map((request) => request.body.external_task_id as string);
    const before = creates().length;

    await service.runtime.queues.submit.resume();
    await service.waitForTask(single.body.task_id, (task) => task.status !== 'queued', 20_000);

    const order = creates().slice(before);
    const position = order.indexOf(single.body.task_id);
    // Each of the 4 concurrent slots takes the lowest-numbered job; B's is tied with A's first.
    expect(position).toBeGreaterThanOrEqual(0);
    expect(position).toBeLessThan(8);
    await service.runtime.queues.submit.pause();
    // 2,000 posts take ~10 s alone on this 2-core machine; beside another suite, several times that.
  }, 120_000);
});

describe('per-tenant limits', () => {
  let service: TestService;

  beforeAll(async () => {
    service = await startTestService({ workers: false, env: { TENANT_MAX_SUBMITS_PER_MINUTE: '3', TENANT_MAX_IN_FLIGHT: '5' } });
  });
  afterAll(() => service.stop());

  const post = (auth: string, headers: Record<string, string> = {}) =>
    service.http.post('/v1/tasks').set('authorization', auth).set(headers).send(validImageTask({ external_task_id: uniqueExternalId('limit') }));
  const storedFor = async (tenantName: string) => service.runtime.db.task.count({ where: { tenant: { name: tenantName } } });

  test('when a tenant submits more than its per-minute limit, then 429 problem+json with Retry-After, nothing stored, and other tenants unaffected', async () => {
    const busy = await service.createTenant();
    const quiet = await service.createTenant();
    for (let i = 0; i < 3; i++) expect((await post(busy.auth)).status).toBe(202);

    const refused = await post(busy.auth);

    expect(refused.status).toBe(429);
    expect(refused.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(refused.body).toMatchObject({ status: 429, code: 'TENANT_RATE_LIMITED', limit: 3 });
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(60);
    expect(await storedFor(busy.tenant)).toBe(3);
    expect((await post(quiet.auth)).status).toBe(202);
  });

  test('when an Idempotency-Key request is replayed, then the replay does not count against the limit', async () => {
    const tenant = await service.createTenant();
    const body = validImageTask({ external_task_id: uniqueExternalId('replayed') });
    const first = await service.http.post('/v1/tasks').set('authorization', tenant.auth).set('idempotency-key', 'once').send(body);
    for (let i = 0; i < 4; i++) {
      const again = await service.http.post('/v1/tasks').set('authorization', tenant.auth).set('idempotency-key', 'once').send(body);
      expect(again.status).toBe(202);
      expect(again.body.task_id).toBe(first.body.task_id);
    }
    expect((await post(tenant.auth)).status).toBe(202);
  });

  test('when the Kling-compatible surface hits the limit, then 429 with Kling\'s code 1302', async () => {
    const tenant = await service.createTenant();
    const kling = () => service.http.post('/kling/v1/general/advanced-custom-elements').set('authorization', tenant.auth).send(validImageTask());
    for (let i = 0; i < 3; i++) expect((await kling()).body.code).toBe(0);

    const refused = await kling();

    expect(refused.status).toBe(429);
    expect(refused.body.code).toBe(1302);
    expect(refused.headers['retry-after']).toBeDefined();
  });

  test('when a tenant has as many unfinished tasks as allowed, then the next submit is 429 until one finishes', async () => {
    const inFlightService = await startTestService({ workers: false, env: { TENANT_MAX_IN_FLIGHT: '2' } });
    try {
      const tenant = await inFlightService.createTenant();
      const submit = () => inFlightService.http.post('/v1/tasks').set('authorization', tenant.auth).send(validImageTask({ external_task_id: uniqueExternalId('flight') }));
      const first = await submit();
      expect((await submit()).status).toBe(202);

      const refused = await submit();
      expect(refused.status).toBe(429);
      expect(refused.body).toMatchObject({ code: 'TENANT_IN_FLIGHT_LIMIT', limit: 2 });
      expect(refused.headers['retry-after']).toBe('10');

      expect((await inFlightService.http.post(`/v1/tasks/${first.body.task_id}/cancel`).set('authorization', tenant.auth)).status).toBe(200);
      expect((await submit()).status).toBe(202);
    } finally {
      await inFlightService.stop();
    }
  });
});

describe('fairness: a tenant\'s backlog counts each job once', () => {
  let service: TestService;

  beforeAll(async () => {
    // One job at a time, and every unscripted create held a while: while Kling holds one, the backlog is still.
    service = await startTestService({ env: { KLING_CONCURRENCY: '1' }, fakeKling: { createDelayMs: 400 } });
  });
  afterAll(() => service.stop());

  /** Polls until `holds` (no fixed sleeps); often, as Kling holds the retried create only 400 ms. */
  const until = (holds: () => Promise<boolean> | boolean, what: string) => waitUntil(holds, what, { timeoutMs: 10_000, intervalMs: 10 });

  test('when a job comes back for a retry, then it does not leave its tenant\'s backlog a second time: later jobs keep their places', async () => {
    const { auth } = await service.createTenant();
    const post = async () => {
      const created = await service.http.post('/v1/tasks').set('authorization', auth).send(validImageTask({ external_task_id: uniqueExternalId('once') }));
      expect(created.status).toBe(202);
      return created.body.task_id as string;
    };
    await service.runtime.queues.submit.pause();
    const [first, ...others] = [await post(), await post(), await post()];
    const tenantId = (await service.runtime.tasks.findById(first!))!.tenantId;
    const backlog = async () => Number((await service.runtime.redis.get(`${service.runtime.config.queuePrefix}:fair-share:${tenantId}`)) ?? 0);
    // A create is answered before its job is queued (and counted).
    await until(async () => (await backlog()) === 3, 'the three jobs to be queued');
    service.fake!.scriptCreate({ status: 500, body: { code: 5000, message: 'Server internal error', request_id: 'r1' } });

    await service.runtime.queues.submit.resume();
    // The first job fails once and is retried; Kling holds its second create, and nothing else runs meanwhile.
    const createsOf = (taskId: string) => service.fake!.creates().filter((request) => request.body?.external_task_id === taskId).length;
    await until(() => createsOf(first!) === 2, 'the first task to be sent to Kling a second time');
    const taken = new Set(service.fake!.creates().map((request) => request.body?.external_task_id)).size;
    expect(service.fake!.createsInFlight).toBe(1);

    // Each job taken left the backlog once: the retried one too, on its first take only.
    expect(await backlog()).toBe(3 - taken);
    for (const taskId of [first!, ...others]) await service.waitForTask(taskId, (task) => task.status === 'succeed');
    expect(await backlog()).toBe(0);
  });
});
