import { gzipSync } from 'node:zlib';
import { announceRevocation } from '../../src/api/api-key-cache';
import type { Response } from 'supertest';
import { startTestService, type TestService } from '../helpers/test-service';
import { uniqueExternalId, validImageTask } from '../helpers/factories';
import { startPrivateRedis, type PrivateRedis } from '../helpers/private-redis';
import { Redis } from 'ioredis';

type Tenant = Awaited<ReturnType<TestService['createTenant']>>;

/** Asserts an RFC 9457 problem answer with our stable error code. */
function expectProblem(response: Response, status: number, code: string): void {
  expect(response.status).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(response.body).toMatchObject({ status, code, type: expect.any(String), title: expect.any(String), detail: expect.any(String) });
}

async function postTask(service: TestService, tenant: Tenant, overrides: Record<string, unknown> = {}): Promise<{ task_id: string; [key: string]: unknown }> {
  const response = await service.http.post('/v1/tasks').set('authorization', tenant.auth).send(validImageTask(overrides));
  expect(response.status).toBe(202);
  return response.body;
}

/** Jobs not yet finished in the submit queue (the whole queue is this file's: its prefix is unique). */
async function pendingSubmitJobs(service: TestService): Promise<number> {
  const counts = await service.runtime.queues.submit.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children');
  return Object.values(counts).reduce((sum, count) => sum + count, 0);
}

async function waitForSubmitQueueToDrain(service: TestService, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let pending = await pendingSubmitJobs(service);
  while (pending > 0) {
    if (Date.now() > deadline) throw new Error(`submit queue still has ${pending} unfinished jobs after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
    pending = await pendingSubmitJobs(service);
  }
}

const eventLabels = (response: Response): string[] => response.body.data.map((e: { type: string; status: string | null }) => `${e.type}:${e.status}`);

describe('tasks API (workers off: tasks stay queued)', () => {
  let service: TestService;
  let tenantA: Tenant;
  let tenantB: Tenant;

  beforeAll(async () => {
    service = await startTestService({ workers: false });
    tenantA = await service.createTenant();
    tenantB = await service.createTenant();
  });
  afterAll(() => service.stop());

  describe('authentication', () => {
    test('when the Authorization header is missing, then 401 problem+json with a Bearer challenge', async () => {
      const response = await service.http.get('/v1/tasks');

      expectProblem(response, 401, 'UNAUTHORIZED');
      expect(response.headers['www-authenticate']).toMatch(/^Bearer/);
    });

    test('when the API key is unknown, then 401 problem+json with an invalid_token challenge', async () => {
      const response = await service.http.post('/v1/tasks').set('authorization', 'Bearer ket_not-a-real-key').send(validImageTask());

      expectProblem(response, 401, 'UNAUTHORIZED');
      expect(response.headers['www-authenticate']).toMatch(/^Bearer error="invalid_token"/);
    });

    test('when the header is not a Bearer token, then 401', async () => {
      const response = await service.http.get('/v1/tasks').set('authorization', `Basic ${Buffer.from('a:b').toString('base64')}`);

      expectProblem(response, 401, 'UNAUTHORIZED');
      expect(response.headers['www-authenticate']).toMatch(/^Bearer/);
    });

    test('when a key is revoked (and announced, as `keys revoke` does), then it stops working at once', async () => {
      const tenant = await service.createTenant();
      expect((await service.http.get('/v1/tasks').set('authorization', tenant.auth)).status).toBe(200);

      await service.runtime.tenants.revokeApiKey(tenant.apiKeyId);
      expect(await announceRevocation(service.runtime.redis, service.runtime.config.queuePrefix)).toBe(true);
      // The announcement reaches the API's subscriber within moments; the cached key is then dropped.
      let response = await service.http.get('/v1/tasks').set('authorization', tenant.auth);
      for (const deadline = Date.now() + 5_000; response.status === 200 && Date.now() < deadline; ) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        response = await service.http.get('/v1/tasks').set('authorization', tenant.auth);
      }

      expectProblem(response, 401, 'UNAUTHORIZED');
      expect(response.headers['www-authenticate']).toMatch(/invalid_token/);
    });
  });

  describe('request body encodings', () => {
    const rawPost = (body: Buffer | string, headers: Record<string, string>) =>
      fetch(`${service.baseUrl}/v1/tasks`, { method: 'POST', headers: { authorization: tenantA.auth, ...headers }, body });

    test.each([
      ['with a declared length', (json: string) => ({ body: json, headers: { 'content-type': 'application/json' } })],
      ['with charset=utf-8', (json: string) => ({ body: json, headers: { 'content-type': 'application/json; charset=utf-8' } })],
      ['gzip-compressed', (json: string) => ({ body: gzipSync(json), headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' } })],
    ])('when the JSON body is sent %s, then the task is created from it', async (_label, encode) => {
      const externalId = uniqueExternalId('encoded');
      const { body, headers } = encode(JSON.stringify(validImageTask({ external_task_id: externalId, element_name: 'Encoded é' })));

      const response = await rawPost(body, headers);

      expect(response.status).toBe(202);
      expect(await response.json()).toMatchObject({ external_task_id: externalId, request: { element_name: 'Encoded é' } });
    });

    test('when the JSON body is sent chunked (no Content-Length), then the task is created from it', async () => {
      const externalId = uniqueExternalId('chunked');
      const json = JSON.stringify(validImageTask({ external_task_id: externalId }));
      const body = new ReadableStream({
        start(controller) {
          controller.enqueue(new TextEncoder().encode(json.slice(0, 20)));
          controller.enqueue(new TextEncoder().encode(json.slice(20)));
          controller.close();
        },
      });

      const response = await fetch(`${service.baseUrl}/v1/tasks`, {
        method: 'POST',
        headers: { authorization: tenantA.auth, 'content-type': 'application/json' },
        body,
        duplex: 'half',
      } as RequestInit);

      expect(response.status).toBe(202);
      expect(((await response.json()) as { external_task_id: string }).external_task_id).toBe(externalId);
    });
  });

  describe('tenant isolation', () => {
    test("when tenant B asks for tenant A's task in any way, then it gets 404 and the task is untouched", async () => {
      const externalId = uniqueExternalId('isolation');
      const task = await postTask(service, tenantA, { external_task_id: externalId });
      const asB = (request: ReturnType<TestService['http']['get']>) => request.set('authorization', tenantB.auth);

      const byId = await asB(service.http.get(`/v1/tasks/${task.task_id}`));
      const byExternalId = await asB(service.http.get(`/v1/tasks/by-external-id/${externalId}`));
      const events = await asB(service.http.get(`/v1/tasks/${task.task_id}/events`));
      const cancel = await asB(service.http.post(`/v1/tasks/${task.task_id}/cancel`));
      const filtered = await asB(service.http.get('/v1/tasks').query({ external_task_id: externalId }));
      const all = await asB(service.http.get('/v1/tasks').query({ limit: 100 }));

      expectProblem(byId, 404, 'TASK_NOT_FOUND');
      expectProblem(byExternalId, 404, 'TASK_NOT_FOUND');
      expectProblem(events, 404, 'TASK_NOT_FOUND');
      expectProblem(cancel, 404, 'TASK_NOT_FOUND');
      expect(filtered.status).toBe(200);
      expect(filtered.body).toEqual({ data: [], next_cursor: null });
      expect(all.body.data.map((t: { task_id: string }) => t.task_id)).not.toContain(task.task_id);
      const stillA = await service.http.get(`/v1/tasks/${task.task_id}`).set('authorization', tenantA.auth);
      expect(stillA.status).toBe(200);
      expect(stillA.body.status).toBe('queued');
    });

    test('when a task id does not exist, then 404 problem naming it', async () => {
      const response = await service.http.get('/v1/tasks/tsk_01JZZZZZZZZZZZZZZZZZZZZZZZ').set('authorization', tenantA.auth);

      expectProblem(response, 404, 'TASK_NOT_FOUND');
      expect(response.body.detail).toContain('tsk_01JZZZZZZZZZZZZZZZZZZZZZZZ');
    });
  });

  describe('external_task_id uniqueness', () => {
    test('when a tenant reuses an external_task_id, then 409 names the existing task and nothing is stored or queued', async () => {
      const externalId = uniqueExternalId('dup');
      const first = await postTask(service, tenantA, { external_task_id: externalId });
      await service.runtime.enqueuer.drain(); // its job is queued just after the answer
      const tasksBefore = await service.runtime.db.task.count();
      const jobsBefore = await pendingSubmitJobs(service);

      const second = await service.http
        .post('/v1/tasks')
        .set('authorization', tenantA.auth)
        .send(validImageTask({ external_task_id: externalId, element_name: 'Other' }));

      expectProblem(second, 409, 'EXTERNAL_TASK_ID_CONFLICT');
      expect(second.body.task_id).toBe(first.task_id);
      expect(second.body.detail).toContain(first.task_id);
      expect(second.body.errors).toEqual([expect.objectContaining({ path: 'external_task_id' })]);
      expect(await service.runtime.db.task.count()).toBe(tasksBefore);
      expect(await pendingSubmitJobs(service)).toBe(jobsBefore);
      const stored = await service.runtime.db.task.findMany({ where: { externalTaskId: externalId } });
      expect(stored.map((t) => t.id)).toEqual([first.task_id]);
    });

    test('when another tenant uses the same external_task_id, then it is accepted as its own task', async () => {
      const externalId = uniqueExternalId('shared');
      const ofA = await postTask(service, tenantA, { external_task_id: externalId });

      const ofB = await postTask(service, tenantB, { external_task_id: externalId });

      expect(ofB.task_id).not.toBe(ofA.task_id);
      const seenByB = await service.http.get(`/v1/tasks/by-external-id/${externalId}`).set('authorization', tenantB.auth);
      const seenByA = await service.http.get(`/v1/tasks/by-external-id/${externalId}`).set('authorization', tenantA.auth);
      expect(seenByB.body.task_id).toBe(ofB.task_id);
      expect(seenByA.body.task_id).toBe(ofA.task_id);
    });
  });

  describe('GET /v1/tasks', () => {
    let tenant: Tenant;
    /** Oldest first, as created. */
    let created: { task_id: string; external_task_id: string }[];

    beforeAll(async () => {
      tenant = await service.createTenant();
      created = [];
      for (let i = 0; i < 5; i++) {
        const task = await postTask(service, tenant, { external_task_id: uniqueExternalId(`list${i}`) });
        created.push(task as unknown as { task_id: string; external_task_id: string });
      }
    });

    test('when a tenant lists its tasks, then it gets all of them, newest first', async () => {
      const response = await service.http.get('/v1/tasks').set('authorization', tenant.auth);

      expect(response.status).toBe(200);
      expect(response.body.next_cursor).toBeNull();
      expect(response.body.data.map((t: { task_id: string }) => t.task_id)).toEqual(created.map((t) => t.task_id).reverse());
      const createdAt = response.body.data.map((t: { created_at: string }) => Date.parse(t.created_at));
      expect(createdAt).toEqual([...createdAt].sort((a, b) => b - a));
      expect(response.body.data[0]).toMatchObject({ status: 'queued', request: { element_name: 'Hero' } });
    });

    test('when paging with limit=2, then every task appears exactly once and the last page has no cursor', async () => {
      const pages: string[][] = [];
      let cursor: string | null = null;

      do {
        const response: Response = await service.http
          .get('/v1/tasks')
          .set('authorization', tenant.auth)
          .query({ limit: 2, ...(cursor ? { cursor } : {}) });
        expect(response.status).toBe(200);
        pages.push(response.body.data.map((t: { task_id: string }) => t.task_id));
        cursor = response.body.next_cursor;
      } while (cursor && pages.length < 10);

      expect(pages.map((page) => page.length)).toEqual([2, 2, 1]);
      expect(pages.flat()).toEqual(created.map((t) => t.task_id).reverse());
    });

    test('when the limit equals the number of tasks, then one page holds them all and next_cursor is null', async () => {
      const first = await service.http.get('/v1/tasks').set('authorization', tenant.auth).query({ limit: 5 });

      expect(first.body.data).toHaveLength(5);
      expect(first.body.next_cursor).toBeNull();
    });

    test('when filtering by status or external_task_id, then only matching tasks are listed', async () => {
      const canceled = created[1]!;
      const cancel = await service.http.post(`/v1/tasks/${canceled.task_id}/cancel`).set('authorization', tenant.auth);
      expect(cancel.status).toBe(200);

      const byCanceled = await service.http.get('/v1/tasks').set('authorization', tenant.auth).query({ status: 'canceled' });
      const byQueued = await service.http.get('/v1/tasks').set('authorization', tenant.auth).query({ status: 'queued' });
      const byExternal = await service.http.get('/v1/tasks').set('authorization', tenant.auth).query({ external_task_id: created[3]!.external_task_id });
      const bySucceed = await service.http.get('/v1/tasks').set('authorization', tenant.auth).query({ status: 'succeed' });

      const ids = (response: Response) => response.body.data.map((t: { task_id: string }) => t.task_id);
      expect(ids(byCanceled)).toEqual([canceled.task_id]);
      expect(ids(byQueued)).toEqual(created.filter((t) => t !== canceled).map((t) => t.task_id).reverse());
      expect(ids(byExternal)).toEqual([created[3]!.task_id]);
      expect(ids(bySucceed)).toEqual([]);
    });

    test.each([
      ['limit', { limit: '0' }],
      ['limit', { limit: '101' }],
      ['limit', { limit: 'ten' }],
      ['limit', { limit: '1.5' }],
      ['status', { status: 'done' }],
      ['cursor', { cursor: 'not-a-cursor' }],
      ['cursor', { cursor: Buffer.from('tsk_short').toString('base64url') }],
    ])('when the %s parameter is invalid (%o), then 400 naming it in errors', async (path, query) => {
      const response = await service.http.get('/v1/tasks').set('authorization', tenant.auth).query(query);

      expectProblem(response, 400, 'VALIDATION_FAILED');
      expect(response.body.errors).toEqual([expect.objectContaining({ path, message: expect.any(String) })]);
    });
  });

  describe('events', () => {
    test('when a task was just created, then its timeline holds the created event', async () => {
      const task = await postTask(service, tenantA);

      const response = await service.http.get(`/v1/tasks/${task.task_id}/events`).set('authorization', tenantA.auth);

      expect(response.status).toBe(200);
      expect(response.body.data).toEqual([{ at: expect.any(String), type: 'created', status: 'queued', detail: null }]);
      expect(Number.isNaN(Date.parse(response.body.data[0].at))).toBe(false);
    });
  });

  describe('cancel', () => {
    test('when a queued task is canceled, then 200 canceled with completed_at, and a second cancel is 409', async () => {
      const task = await postTask(service, tenantA);

      const first = await service.http.post(`/v1/tasks/${task.task_id}/cancel`).set('authorization', tenantA.auth);
      const second = await service.http.post(`/v1/tasks/${task.task_id}/cancel`).set('authorization', tenantA.auth);

      expect(first.status).toBe(200);
      expect(first.body).toMatchObject({ task_id: task.task_id, status: 'canceled' });
      expect(Number.isNaN(Date.parse(first.body.completed_at))).toBe(false);
      expectProblem(second, 409, 'TASK_NOT_CANCELABLE');
      const events = await service.http.get(`/v1/tasks/${task.task_id}/events`).set('authorization', tenantA.auth);
      expect(eventLabels(events)).toEqual(['created:queued', 'canceled:canceled']);
    });

    test('when the submit to Kling is in flight, then cancel is 409 and the task stays queued', async () => {
      const task = await postTask(service, tenantA);
      await service.runtime.db.task.update({ where: { id: task.task_id }, data: { submitInFlight: true } });

      const response = await service.http.post(`/v1/tasks/${task.task_id}/cancel`).set('authorization', tenantA.auth);

      expectProblem(response, 409, 'TASK_NOT_CANCELABLE');
      expect((await service.runtime.tasks.findById(task.task_id))?.status).toBe('queued');
    });

    test.each(['submitted', 'processing'] as const)('when Kling already has the task (%s, no submit in flight), then cancel is 409 and the task is unchanged', async (status) => {
      const task = await postTask(service, tenantA);
      await service.runtime.db.task.update({ where: { id: task.task_id }, data: { status, submitInFlight: false } });

      const response = await service.http.post(`/v1/tasks/${task.task_id}/cancel`).set('authorization', tenantA.auth);

      expectProblem(response, 409, 'TASK_NOT_CANCELABLE');
      expect(response.body.detail).toContain(`"${status}"`);
      expect((await service.runtime.tasks.findById(task.task_id))?.status).toBe(status);
    });

    test('when the task does not exist, then cancel is 404', async () => {
      const response = await service.http.post('/v1/tasks/tsk_01JZZZZZZZZZZZZZZZZZZZZZZZ/cancel').set('authorization', tenantA.auth);

      expectProblem(response, 404, 'TASK_NOT_FOUND');
    });
  });

  describe('operations routes', () => {
    test('when a route does not exist, then 404 problem+json', async () => {
      const response = await service.http.get('/v2/nothing-here');

      expectProblem(response, 404, 'ROUTE_NOT_FOUND');
    });

    test('when asked for health and readiness, then both answer 200 with postgres and redis ok', async () => {
      const health = await service.http.get('/healthz');
      const ready = await service.http.get('/readyz');

      expect(health.status).toBe(200);
      expect(ready.status).toBe(200);
      expect(ready.body).toEqual({ status: 'ok', checks: { postgres: 'ok', redis: 'ok' } });
    });
  });
});

describe('a canceled task and the workers', () => {
  let service: TestService;
  let tenant: Tenant;

  beforeAll(async () => {
    service = await startTestService({ workers: false });
    tenant = await service.createTenant();
  });
  afterAll(() => service.stop());

  test('when a task is canceled before the workers start, then it is never sent to Kling', async () => {
    const canceled = await postTask(service, tenant);
    const control = await postTask(service, tenant);
    expect((await service.http.post(`/v1/tasks/${canceled.task_id}/cancel`).set('authorization', tenant.auth)).status).toBe(200);

    await service.startWorkers();
    await service.waitForTask(control.task_id, (task) => task.status !== 'queued');
    await waitForSubmitQueueToDrain(service);

    const sentIds = service.fake!.creates().map((request) => request.body?.external_task_id);
    expect(sentIds).toContain(control.task_id);
    expect(sentIds).not.toContain(canceled.task_id);
    const after = await service.runtime.tasks.findById(canceled.task_id);
    expect(after).toMatchObject({ status: 'canceled', attempts: 0, upstreamTaskId: null });
  });
});

describe('when Redis is unreachable', () => {
  let service: TestService;
  let auth: string;

  beforeAll(async () => {
    service = await startTestService({ workers: false, env: { REDIS_URL: 'redis://127.0.0.1:1' } });
    ({ auth } = await service.createTenant());
  });
  afterAll(() => service.stop());

  test('when a task is posted, then it is still accepted (202), stays queued and records enqueue_failed', async () => {
    const response = await service.http.post('/v1/tasks').set('authorization', auth).send(validImageTask());

    expect(response.status).toBe(202);
    expect(response.body.status).toBe('queued');
    const stored = await service.runtime.tasks.findById(response.body.task_id);
    expect(stored?.status).toBe('queued');
    // The job is queued just after the answer; its failure is recorded then.
    await service.runtime.enqueuer.drain();
    const events = await service.http.get(`/v1/tasks/${response.body.task_id}/events`).set('authorization', auth);
    expect(eventLabels(events)).toEqual(['created:queued', 'enqueue_failed:queued']);
    expect(events.body.data[1].detail).toEqual({ message: expect.stringMatching(/not connected|timed out/) });
  });

  test('when readiness is asked, then 503 names redis and postgres stays ok', async () => {
    const ready = await service.http.get('/readyz');

    expect(ready.status).toBe(503);
    expect(ready.body.status).toBe('unavailable');
    expect(ready.body.checks.postgres).toBe('ok');
    expect(ready.body.checks.redis).toMatch(/^unavailable/);
  });
});

/**
 * A create is answered once its row is committed; its job is queued after the answer. A Redis of the
 * test's own holds every write (CLIENT PAUSE … WRITE) until the test lets it go, so whether the answer
 * waited for the job is decided by the order of events, not by timing: before, the create would have
 * waited for Redis until its 2 s queuing timeout and recorded `enqueue_failed`.
 */
describe('when Redis is slow to take the job', () => {
  let service: TestService;
  let auth: string;
  let redis: PrivateRedis;
  let control: Redis;

  beforeAll(async () => {
    redis = await startPrivateRedis();
    control = new Redis(redis.url);
    service = await startTestService({ workers: false, env: { REDIS_URL: redis.url } });
    ({ auth } = await service.createTenant());
  });
  afterAll(async () => {
    await control.call('CLIENT', 'UNPAUSE').catch(() => undefined);
    await service.stop();
    control.disconnect();
    await redis.destroy();
  });

  test('when Redis holds writes, then the create is answered 202 at once, and its job is queued once Redis takes writes again', async () => {
    await control.call('CLIENT', 'PAUSE', '60000', 'WRITE');
    let answered: { status: number; taskId: string } | undefined;
    try {
      const response = await service.http.post('/v1/tasks').set('authorization', auth).send(validImageTask());
      answered = { status: response.status, taskId: response.body.task_id };
      // Answered while Redis still holds writes: the job cannot be there yet.
      const events = await service.http.get(`/v1/tasks/${answered.taskId}/events`).set('authorization', auth);
      expect(eventLabels(events)).toEqual(['created:queued']);
    } finally {
      await control.call('CLIENT', 'UNPAUSE');
    }
    expect(answered?.status).toBe(202);

    await service.runtime.enqueuer.drain();
    expect((await service.runtime.queues.submit.getJob(answered!.taskId))?.data.taskId).toBe(answered!.taskId);
    const events = await service.http.get(`/v1/tasks/${answered!.taskId}/events`).set('authorization', auth);
    expect(eventLabels(events)).toEqual(['created:queued']);
  });
});
