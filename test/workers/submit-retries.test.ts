import { createHmac, timingSafeEqual } from 'node:crypto';
import type { RecordedRequest } from '../helpers/fake-kling';
import { startTestService, type TestService } from '../helpers/test-service';
import { validImageTask } from '../helpers/factories';

/**
 * How the submit worker treats Kling's failures (CONTRACT.md "Upstream"): retry what is transient,
 * fail fast with Kling's own code and message what is not, never submit a task twice, never fail silently.
 */

const ELEMENTS_PATH = '/v1/general/advanced-custom-elements';

interface TaskEvent {
  at: string;
  type: string;
  status: string | null;
  detail: Record<string, any> | null;
}

/** Polls `probe` until it returns something truthy (no fixed sleeps). */
async function waitFor<T>(probe: () => Promise<T> | T, what: string, timeoutMs = 10_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function submit(service: TestService, auth: string, overrides: Record<string, unknown> = {}): Promise<string> {
  const created = await service.http.post('/v1/tasks').set('authorization', auth).send(validImageTask(overrides));
  expect(created.status).toBe(202);
  return created.body.task_id as string;
}

async function getTask(service: TestService, auth: string, taskId: string) {
  const response = await service.http.get(`/v1/tasks/${taskId}`).set('authorization', auth);
  expect(response.status).toBe(200);
  return response.body;
}

async function eventsOf(service: TestService, auth: string, taskId: string): Promise<TaskEvent[]> {
  const response = await service.http.get(`/v1/tasks/${taskId}/events`).set('authorization', auth);
  expect(response.status).toBe(200);
  return response.body.data;
}

const submitEvents = (events: TaskEvent[]) => events.filter((e) => e.type.startsWith('submit'));

/** The create requests Kling received for one of our tasks (we send our task id as external_task_id). */
const createsFor = (service: TestService, taskId: string): RecordedRequest[] =>
  service.fake!.creates().filter((r) => r.body?.external_task_id === taskId);

const queriesFor = (service: TestService, taskId: string): RecordedRequest[] =>
  service.fake!.queries().filter((r) => r.path === `${ELEMENTS_PATH}/${taskId}`);

/** Waits until BullMQ has settled the task's submit job, so "nothing more will be sent" is a fact, not a hope. */
const waitForJobState = (service: TestService, taskId: string, state: 'completed' | 'failed') =>
  waitFor(async () => (await service.runtime.queues.submit.getJobState(taskId)) === state, `submit job ${taskId} to be ${state}`);

function verifyHs256(token: string, secret: string): { header: any; payload: any } {
  const [header, payload, signature] = token.split('.');
  expect(header && payload && signature).toBeTruthy();
  const expected = createHmac('sha256', secret).update(`${header}.${payload}`).digest();
  const actual = Buffer.from(signature!, 'base64url');
  expect(actual.length === expected.length && timingSafeEqual(actual, expected)).toBe(true);
  return {
    header: JSON.parse(Buffer.from(header!, 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(payload!, 'base64url').toString('utf8')),
  };
}

describe('submit retries and failures (bearer key, fake Kling)', () => {
  let service: TestService;
  let auth: string;

  beforeAll(async () => {
    service = await startTestService();
    ({ auth } = await service.createTenant());
  });
  afterAll(() => service.stop());
  // Scripts are a queue shared by the file's tests: each test must consume exactly what it scripted.
  afterEach(() => expect(service.fake!.scriptedRemaining()).toBe(0));

  test('when Kling answers HTTP 500 (code 5000) twice, then the task is retried and succeeds on the third attempt', async () => {
    service.fake!.scriptCreate(
      { status: 500, body: { code: 5000, message: 'Server internal error', request_id: 'r1' } },
      { status: 500, body: { code: 5000, message: 'Server internal error', request_id: 'r2' } },
    );
    const taskId = await submit(service, auth);

    await service.waitForTask(taskId, (task) => task.status === 'succeed');

    const task = await getTask(service, auth, taskId);
    expect(task).toMatchObject({ status: 'succeed', attempts: 3, result: { elements: [{ element_id: '987654321987654321' }] } });
    // The transient errors are history once Kling has the task (they stay in the events).
    expect(task.error).toBeNull();
    expect(task.upstream_task_id).toBe(service.fake!.taskByExternalId(taskId)!.task_id);
    const events = submitEvents(await eventsOf(service, auth, taskId));
    expect(events.map((e) => `${e.type}:${e.status}`)).toEqual(['submit_retry:queued', 'submit_retry:queued', 'submitted:submitted']);
    expect(events[0]!.detail).toMatchObject({ attempt: 1, code: '5000', http_status: 500 });
    expect(events[1]!.detail).toMatchObject({ attempt: 2, code: '5000', http_status: 500 });
    expect(events[2]!.detail).toMatchObject({ attempt: 3, adopted: false });
    expect(createsFor(service, taskId)).toHaveLength(3);
    expect(service.fake!.tasks.size).toBeGreaterThan(0);
    expect([...service.fake!.tasks.values()].filter((t) => t.task_info.external_task_id === taskId)).toHaveLength(1);
  });

  test('when Kling rate-limits (429, code 1302) with Retry-After: 1, then the retry waits about a second and succeeds', async () => {
    service.fake!.scriptCreate({
      status: 429,
      body: { code: 1302, message: 'Too many requests', request_id: 'r' },
      headers: { 'retry-after': '1' },
    });
    const taskId = await submit(service, auth);

    await service.waitForTask(taskId, (task) => task.status === 'succeed');

    const creates = createsFor(service, taskId);
    expect(creates).toHaveLength(2);
    // KLING_RETRY_BASE_DELAY_MS is 50 in tests: only Retry-After explains a gap this long.
    expect(creates[1]!.at - creates[0]!.at).toBeGreaterThanOrEqual(900);
    const retry = submitEvents(await eventsOf(service, auth, taskId)).find((e) => e.type === 'submit_retry');
    expect(retry?.detail).toMatchObject({ code: '1302', http_status: 429, retry_in_ms: 1000, rate_limited: true });
    // A rate refusal gives its attempt back: only the accepted submit counts.
    expect((await getTask(service, auth, taskId)).attempts).toBe(1);
  });

  test('when Kling is over its concurrency limit (429, code 1303), then the task is retried and succeeds', async () => {
    service.fake!.scriptCreate({ status: 429, body: { code: 1303, message: 'parallel task over resource pack limit', request_id: 'r' } });
    const taskId = await submit(service, auth);

    await service.waitForTask(taskId, (task) => task.status === 'succeed');

    expect(createsFor(service, taskId)).toHaveLength(2);
    const events = submitEvents(await eventsOf(service, auth, taskId));
    expect(events.map((e) => e.type)).toEqual(['submit_retry', 'submitted']);
    expect(events[0]!.detail).toMatchObject({ code: '1303', http_status: 429 });
  });

  test('when Kling refuses more times than KLING_MAX_ATTEMPTS for rate reasons only, then the task still succeeds: rate refusals use up no attempt', async () => {
    const refusal = { status: 429, body: { code: 1302, message: 'rate limit exceeded', request_id: 'r' } };
    service.fake!.scriptCreate(refusal, refusal, refusal, refusal, refusal);
    const taskId = await submit(service, auth);

    await service.waitForTask(taskId, (task) => task.status === 'succeed', 20_000);

    expect(createsFor(service, taskId)).toHaveLength(6);
    const task = await getTask(service, auth, taskId);
    expect(task).toMatchObject({ status: 'succeed', attempts: 1, error: null });
    const retries = submitEvents(await eventsOf(service, auth, taskId)).filter((e) => e.type === 'submit_retry');
    expect(retries).toHaveLength(5);
    expect(retries.every((e) => (e.detail as { rate_limited?: boolean }).rate_limited === true)).toBe(true);
  });

  test('when a proxy answers 503 with a non-JSON error page, then the task is retried and succeeds', async () => {
    service.fake!.scriptCreate({ status: 503, rawBody: '<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>' });
    const taskId = await submit(service, auth);

    await service.waitForTask(taskId, (task) => task.status === 'succeed');

    expect(createsFor(service, taskId)).toHaveLength(2);
    const retry = submitEvents(await eventsOf(service, auth, taskId)).find((e) => e.type === 'submit_retry');
    expect(retry?.detail).toMatchObject({ code: 'HTTP_503', http_status: 503 });
  });

  test('when Kling answers 429 with code 1102 (resource pack exhausted), then the task fails at once with Kling’s code and message', async () => {
    service.fake!.scriptCreate({ status: 429, body: { code: 1102, message: 'resource pack exhausted', request_id: 'r' } });
    const taskId = await submit(service, auth);

    await service.waitForTask(taskId, (task) => task.status === 'failed');
    await waitForJobState(service, taskId, 'failed');

    const task = await getTask(service, auth, taskId);
    expect(task).toMatchObject({ status: 'failed', attempts: 1, error: { code: '1102', message: 'resource pack exhausted' } });
    expect(task.completed_at).not.toBeNull();
    expect(createsFor(service, taskId)).toHaveLength(1);
    const events = submitEvents(await eventsOf(service, auth, taskId));
    expect(events.map((e) => `${e.type}:${e.status}`)).toEqual(['submit_failed:failed']);
    expect(events[0]!.detail).toMatchObject({ code: '1102', http_status: 429, final: true });
  });

  test.each([
    { code: 1201, message: 'bad param' },
    { code: 1301, message: undefined },
  ])('when Kling answers 400 with code $code, then the task fails with Kling’s code and message and is not retried', async ({ code, message }) => {
    service.fake!.scriptCreate({ status: 400, body: { code, ...(message ? { message } : {}), request_id: 'r' } });
    const taskId = await submit(service, auth);

    await service.waitForTask(taskId, (task) => task.status === 'failed');
    await waitForJobState(service, taskId, 'failed');

    const task = await getTask(service, auth, taskId);
    expect(task).toMatchObject({ status: 'failed', attempts: 1, error: { code: String(code) } });
    if (message) expect(task.error.message).toBe(message);
    expect(task.error.message).toEqual(expect.any(String));
    expect(task.error.message.length).toBeGreaterThan(0);
    expect(createsFor(service, taskId)).toHaveLength(1);
    expect(submitEvents(await eventsOf(service, auth, taskId)).map((e) => e.type)).toEqual(['submit_failed']);
  });

  test('when Kling keeps answering 500, then the task fails after KLING_MAX_ATTEMPTS (4) with the last error, and nothing more is sent', async () => {
    service.fake!.scriptCreate(
      ...[1, 2, 3, 4].map((n) => ({ status: 500, body: { code: 5000, message: `internal error #${n}`, request_id: `r${n}` } })),
    );
    const taskId = await submit(service, auth);

    await service.waitForTask(taskId, (task) => task.status === 'failed');
    await waitForJobState(service, taskId, 'failed');

    const task = await getTask(service, auth, taskId);
    expect(task).toMatchObject({ status: 'failed', attempts: 4, error: { code: '5000', message: 'internal error #4' } });
    expect(task.status_message).toMatch(/4 attempts/);
    expect(createsFor(service, taskId)).toHaveLength(4);
    const events = submitEvents(await eventsOf(service, auth, taskId));
    expect(events.map((e) => `${e.type}:${e.status}`)).toEqual([
      'submit_retry:queued',
      'submit_retry:queued',
      'submit_retry:queued',
      'submit_failed:failed',
    ]);
    expect(events[3]!.detail).toMatchObject({ attempt: 4, code: '5000', message: 'internal error #4', final: true });
  });

  test('when a create times out but Kling did create the task, then the retry looks it up by our task id and adopts it instead of sending it again', async () => {
    // Kling stores the task on receipt but holds the answer past the 2 s client timeout; its callbacks
    // follow once it answers (into the void).
    service.fake!.scriptCreate({ status: 200, delayMs: 3_000, acceptAnyway: true, acceptAt: 'receipt', callbacksAnyway: true });
    const taskId = await submit(service, auth);

    const submitted = await service.waitForTask(taskId, (task) => task.status !== 'queued');
    expect(submitted.status).toBe('submitted');
    expect(submitted.upstreamTaskId).toBe(service.fake!.taskByExternalId(taskId)!.task_id);
    await service.waitForTask(taskId, (task) => task.status === 'succeed');

    const creates = createsFor(service, taskId);
    expect(creates).toHaveLength(1);
    expect([...service.fake!.tasks.values()].filter((t) => t.task_info.external_task_id === taskId)).toHaveLength(1);
    const lookups = queriesFor(service, taskId);
    expect(lookups.length).toBeGreaterThanOrEqual(1);
    expect(lookups[0]!.at).toBeGreaterThanOrEqual(creates[0]!.at + 1_900);
    const task = await getTask(service, auth, taskId);
    expect(task).toMatchObject({ status: 'succeed', attempts: 2, error: null, upstream_task_id: service.fake!.taskByExternalId(taskId)!.task_id });
    const events = submitEvents(await eventsOf(service, auth, taskId));
    expect(events.map((e) => e.type)).toEqual(['submit_retry', 'submitted']);
    expect(events[0]!.detail).toMatchObject({ attempt: 1, code: 'TIMEOUT' });
    expect(events[1]!.detail).toMatchObject({ attempt: 2, adopted: true });
  });
});

describe('a canceled task', () => {
  let service: TestService;
  let auth: string;

  beforeAll(async () => {
    service = await startTestService({ workers: false });
    ({ auth } = await service.createTenant());
  });
  afterAll(() => service.stop());

  test('when a queued task is canceled before any worker runs, then the worker skips it and sends nothing to Kling', async () => {
    const canceledId = await submit(service, auth);
    const keptId = await submit(service, auth);
    const cancel = await service.http.post(`/v1/tasks/${canceledId}/cancel`).set('authorization', auth);
    expect(cancel.status).toBe(200);
    expect(cancel.body.status).toBe('canceled');

    await service.startWorkers();
    await service.waitForTask(keptId, (task) => task.status === 'succeed');
    await waitForJobState(service, canceledId, 'completed');

    expect(createsFor(service, canceledId)).toHaveLength(0);
    expect(queriesFor(service, canceledId)).toHaveLength(0);
    expect(createsFor(service, keptId)).toHaveLength(1);
    const task = await getTask(service, auth, canceledId);
    expect(task).toMatchObject({ status: 'canceled', attempts: 0, upstream_task_id: null, error: null });
    expect((await eventsOf(service, auth, canceledId)).map((e) => e.type)).toEqual(['created', 'canceled']);
  });
});

describe('official AK/SK auth (HS256 JWT)', () => {
  let service: TestService;
  let auth: string;

  beforeAll(async () => {
    service = await startTestService({
      env: { KLING_API_KEY: '', KLING_ACCESS_KEY: 'ak', KLING_SECRET_KEY: 'sk' },
      fakeKling: { expectedBearer: undefined },
    });
    ({ auth } = await service.createTenant());
  });
  afterAll(() => service.stop());
  afterEach(() => expect(service.fake!.scriptedRemaining()).toBe(0));

  test('when the worker submits, then Kling gets a Bearer HS256 JWT signed with the secret key: iss = access key, exp = now+1800 s, nbf = now-5 s', async () => {
    const taskId = await submit(service, auth);
    await service.waitForTask(taskId, (task) => task.status === 'succeed');

    const [request] = createsFor(service, taskId);
    const header = request!.headers.authorization;
    expect(header).toMatch(/^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
    const { header: jwtHeader, payload } = verifyHs256(header!.slice('Bearer '.length), 'sk');
    expect(jwtHeader).toEqual({ alg: 'HS256', typ: 'JWT' });
    expect(payload.iss).toBe('ak');
    const sentAt = request!.at / 1000;
    expect(Math.abs(payload.exp - (sentAt + 1800))).toBeLessThanOrEqual(5);
    expect(Math.abs(payload.nbf - (sentAt - 5))).toBeLessThanOrEqual(5);
    expect(payload.nbf).toBeLessThanOrEqual(sentAt);
  });

  test('when Kling says the token expired (code 1004) once, then the client re-signs and retries within the same attempt, and the task succeeds', async () => {
    service.fake!.scriptCreate({ status: 401, body: { code: 1004, message: 'Authorization has expired', request_id: 'r' } });
    const taskId = await submit(service, auth);

    await service.waitForTask(taskId, (task) => task.status === 'succeed');

    const creates = createsFor(service, taskId);
    expect(creates).toHaveLength(2);
    for (const request of creates) verifyHs256(request.headers.authorization!.slice('Bearer '.length), 'sk');
    const task = await getTask(service, auth, taskId);
    expect(task).toMatchObject({ status: 'succeed', attempts: 1, error: null });
    expect(submitEvents(await eventsOf(service, auth, taskId)).map((e) => e.type)).toEqual(['submitted']);
  });

  test('when Kling rejects the token (code 1004) even after re-signing, then the task fails with Kling’s code after one re-sign, never looping', async () => {
    service.fake!.scriptCreate(
      { status: 401, body: { code: 1004, message: 'Authorization has expired', request_id: 'r1' } },
      { status: 401, body: { code: 1004, message: 'Authorization has expired', request_id: 'r2' } },
    );
    const taskId = await submit(service, auth);

    await service.waitForTask(taskId, (task) => task.status === 'failed');
    await waitForJobState(service, taskId, 'failed');

    expect(createsFor(service, taskId)).toHaveLength(2);
    expect(await getTask(service, auth, taskId)).toMatchObject({ attempts: 1, error: { code: '1004', message: 'Authorization has expired' } });
  });
});
