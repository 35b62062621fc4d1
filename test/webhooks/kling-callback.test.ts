import { Webhook } from 'standardwebhooks';
import { uniqueExternalId, validImageTask } from '../helpers/factories';
import type { FakeKlingOptions, FakeTask } from '../helpers/fake-kling';
import { startTestService, type TestService } from '../helpers/test-service';

/**
 * Kling's callbacks (CONTRACT.md "Webhook receiver"): POST /webhooks/kling/:task_id?token=… with the
 * bare task object. Spoofed ones are refused, duplicate/stale/out-of-order ones acknowledged and ignored.
 */

const STATUS_RANK: Record<string, number> = { queued: 0, submitted: 1, processing: 2, succeed: 3, failed: 3, canceled: 3 };
const TERMINAL = ['succeed', 'failed', 'canceled'];
const BIG_ELEMENT_ID = '987654321987654321';

interface TaskEventView {
  at: string;
  type: string;
  status: string | null;
  detail: Record<string, unknown> | null;
}

async function waitUntil(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function startService(fakeKling: FakeKlingOptions, env: Record<string, string> = {}): Promise<{ service: TestService; auth: string }> {
  const service = await startTestService({ fakeKling, env });
  const { auth } = await service.createTenant();
  return { service, auth };
}

/** Submits a task through the API and waits until the worker has it accepted by the fake Kling. */
async function submitTask(service: TestService, auth: string, until: (status: string) => boolean = (s) => s !== 'queued'): Promise<{ taskId: string; upstream: FakeTask }> {
  const created = await service.http.post('/v1/tasks').set('authorization', auth).send(validImageTask({ external_task_id: uniqueExternalId() }));
  expect(created.status).toBe(202);
  const taskId: string = created.body.task_id;
  await service.waitForTask(taskId, (task) => until(task.status));
  const upstream = service.fake!.taskByExternalId(taskId);
  if (!upstream) throw new Error(`fake Kling never saw task ${taskId}`);
  return { taskId, upstream };
}

/** The row and the timeline, to show that a refused callback changed nothing at all. */
async function stateOf(service: TestService, taskId: string) {
  return { row: await service.runtime.tasks.findById(taskId), events: await service.runtime.tasks.listEvents(taskId) };
}

async function eventsOf(service: TestService, auth: string, taskId: string): Promise<TaskEventView[]> {
  const response = await service.http.get(`/v1/tasks/${taskId}/events`).set('authorization', auth);
  expect(response.status).toBe(200);
  return response.body.data;
}

const callbackEvents = (events: TaskEventView[]) => events.filter((e) => e.type === 'callback');

function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
}

function withToken(callbackUrl: string, token: string | null): string {
  const url = new URL(callbackUrl);
  if (token === null) url.searchParams.delete('token');
  else url.searchParams.set('token', token);
  return url.toString();
}

/** The task as Kling would put it in a callback body (the fake's record minus its bookkeeping). */
function viewOf(upstream: FakeTask): Omit<FakeTask, 'callbackUrl'> {
  const { callbackUrl: _url, ...rest } = upstream;
  return rest;
}

const succeedBody = (upstream: FakeTask, elementId = BIG_ELEMENT_ID) => ({
  ...viewOf(upstream),
  task_status: 'succeed',
  task_status_msg: '',
  task_result: { elements: [{ element_id: elementId, element_name: 'Hero', status: 'succeed', owned_by: '1' }] },
});

async function expectProblem(response: Response, status: number, code: string): Promise<void> {
  expect(response.status).toBe(status);
  expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(await response.json()).toMatchObject({ status, code });
}

describe('Kling callbacks: who may call and what they may send', () => {
  let service: TestService;
  let auth: string;
  let taskId: string;
  let upstream: FakeTask;
  let otherTaskId: string;

  beforeAll(async () => {
    ({ service, auth } = await startService({ callbacks: 'none' }));
    ({ taskId, upstream } = await submitTask(service, auth, (s) => s === 'submitted'));
    ({ taskId: otherTaskId } = await submitTask(service, auth, (s) => s === 'submitted'));
  });
  afterAll(() => service.stop());

  test.each([
    ['a wrong token', () => withToken(upstream.callbackUrl!, 'A'.repeat(43))],
    ['no token', () => withToken(upstream.callbackUrl!, null)],
    ['a token for a different task id', () => withToken(upstream.callbackUrl!, service.runtime.callbackTokens.tokenFor(`${taskId}x`))],
    ['the token of another existing task', () => withToken(upstream.callbackUrl!, service.runtime.callbackTokens.tokenFor(otherTaskId))],
  ])('when a callback carries %s, then it is refused with 401 and the task and its timeline stay exactly as they were', async (_label, url) => {
    const before = await stateOf(service, taskId);

    const response = await postJson(url(), succeedBody(upstream));

    await expectProblem(response, 401, 'INVALID_CALLBACK_TOKEN');
    expect(await stateOf(service, taskId)).toEqual(before);
  });

  test('when a callback names a task we do not have, with a token valid for that id, then 404', async () => {
    const unknownId = 'tsk_01JUNKNOWNUNKNOWNUNKNOWNUN';
    const url = `${service.baseUrl}/webhooks/kling/${unknownId}?token=${service.runtime.callbackTokens.tokenFor(unknownId)}`;

    const response = await postJson(url, succeedBody(upstream));

    await expectProblem(response, 404, 'TASK_NOT_FOUND');
  });

  test('when the callback body is not JSON, then 400 and nothing changes', async () => {
    const before = await stateOf(service, taskId);

    const response = await postJson(upstream.callbackUrl!, '{"task_id": "1", "task_status": "succ');

    await expectProblem(response, 400, 'INVALID_JSON');
    expect(await stateOf(service, taskId)).toEqual(before);
  });

  test('when the callback carries an unknown task_status, then 400 naming the field and nothing changes', async () => {
    const before = await stateOf(service, taskId);

    const response = await postJson(upstream.callbackUrl!, { ...viewOf(upstream), task_status: 'exploded' });

    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const problem = (await response.json()) as { errors: { path: string }[] };
    expect(problem).toMatchObject({ status: 400, code: 'VALIDATION_FAILED' });
    expect(problem.errors).toEqual(expect.arrayContaining([expect.objectContaining({ path: 'task_status' })]));
    expect(await stateOf(service, taskId)).toEqual(before);
  });
});

describe('Kling callbacks: duplicates, reordering and terminal states', () => {
  let service: TestService;
  let auth: string;

  beforeAll(async () => {
    ({ service, auth } = await startService({ callbacks: 'none' }));
  });
  afterAll(() => service.stop());

  test('when a failed callback arrives after succeed, then it is acknowledged and the task keeps its result and completion time', async () => {
    const { taskId, upstream } = await submitTask(service, auth, (s) => s === 'submitted');
    expect(await postJson(upstream.callbackUrl!, succeedBody(upstream)).then((r) => r.status)).toBe(200);
    const finished = await service.waitForTask(taskId, (task) => task.status === 'succeed');

    const status = await service.fake!.sendCallback(upstream, { task_status: 'failed', task_status_msg: 'Image pixel is invalid', task_result: {} });

    expect(status).toBe(200);
    const after = (await service.runtime.tasks.findById(taskId))!;
    expect(after).toMatchObject({ status: 'succeed', error: null, result: finished.result, completedAt: finished.completedAt, updatedAt: finished.updatedAt, statusMessage: finished.statusMessage });
    const last = callbackEvents(await eventsOf(service, auth, taskId)).at(-1)!;
    expect(last).toMatchObject({ status: 'succeed', detail: { applied: false, upstream_status: 'failed' } });
  });

  test('when a stale processing callback arrives after succeed, then it is acknowledged and the task as clients see it does not change', async () => {
    const { taskId, upstream } = await submitTask(service, auth, (s) => s === 'submitted');
    await postJson(upstream.callbackUrl!, succeedBody(upstream));
    await service.waitForTask(taskId, (task) => task.status === 'succeed');
    const before = await service.http.get(`/v1/tasks/${taskId}`).set('authorization', auth);

    const status = await service.fake!.sendCallback(upstream, { task_status: 'processing', task_result: {} });

    expect(status).toBe(200);
    const after = await service.http.get(`/v1/tasks/${taskId}`).set('authorization', auth);
    expect(after.body).toEqual(before.body);
  });

  test('when 25 callbacks with mixed statuses race for one task, then exactly one terminal update wins and the timeline never goes backwards', async () => {
    const { taskId, upstream } = await submitTask(service, auth, (s) => s === 'submitted');
    const bodies = Array.from({ length: 25 }, (_, i) => {
      const kind = (['processing', 'succeed', 'failed'] as const)[i % 3];
      if (kind === 'succeed') return succeedBody(upstream, `elem-${i}`);
      if (kind === 'failed') return { ...viewOf(upstream), task_status: 'failed', task_status_msg: `failure ${i}`, task_result: {} };
      return { ...viewOf(upstream), task_status: 'processing', task_status_msg: '', task_result: {} };
    });

    const responses = await Promise.all(bodies.map((body) => postJson(upstream.callbackUrl!, body)));

    expect(responses.map((r) => r.status)).toEqual(bodies.map(() => 200));
    const answers = (await Promise.all(responses.map((r) => r.json()))) as { applied: boolean; status: string }[];
    const winners = answers.map((answer, i) => ({ answer, body: bodies[i]! })).filter(({ answer }) => answer.applied && TERMINAL.includes(answer.status));
    expect(winners).toHaveLength(1);
    const winner = winners[0]!.body;

    const events = await eventsOf(service, auth, taskId);
    const appliedTerminal = events.filter((e) => e.detail?.applied === true && TERMINAL.includes(e.status ?? ''));
    expect(appliedTerminal).toHaveLength(1);
    expect(appliedTerminal[0]!.status).toBe(winner.task_status);

    const final = (await service.runtime.tasks.findById(taskId))!;
    expect(final.status).toBe(winner.task_status);
    if (winner.task_status === 'succeed') {
      expect(final.result).toEqual(winner.task_result);
      expect(final.error).toBeNull();
    } else {
      expect(final.error).toEqual({ code: 'UPSTREAM_TASK_FAILED', message: winner.task_status_msg });
      expect(final.result).toBeNull();
    }

    const ranks = events.map((e) => STATUS_RANK[e.status ?? 'queued']!);
    expect(ranks).toEqual([...ranks].sort((a, b) => a - b));
    expect(events.slice(events.indexOf(appliedTerminal[0]!)).every((e) => e.status === winner.task_status)).toBe(true);
  });

  test('when an element id arrives as a bare JSON number beyond 2^53, then every digit is kept', async () => {
    const { taskId, upstream } = await submitTask(service, auth, (s) => s === 'submitted');
    const raw = `{"task_id":${upstream.task_id},"task_status":"succeed","task_status_msg":"","task_info":{"external_task_id":"${taskId}"},` +
      `"task_result":{"elements":[{"element_id":${BIG_ELEMENT_ID},"element_name":"Hero","status":"succeed"}]},"created_at":${upstream.created_at},"updated_at":${Date.now()}}`;

    const response = await postJson(upstream.callbackUrl!, raw);

    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ applied: true, status: 'succeed' });
    const task = await service.http.get(`/v1/tasks/${taskId}`).set('authorization', auth);
    expect(task.body.result.elements[0].element_id).toBe(BIG_ELEMENT_ID);
    expect(task.body.upstream_task_id).toBe(upstream.task_id);
  });
});

describe('Kling callbacks: duplicated by Kling', () => {
  let service: TestService;
  let auth: string;

  beforeAll(async () => {
    ({ service, auth } = await startService({ callbacks: 'duplicate' }));
  });
  afterAll(() => service.stop());

  test('when Kling sends every callback twice, then each is acknowledged, the repeats are recorded as not applied and the result is unchanged', async () => {
    const { taskId, upstream } = await submitTask(service, auth, (s) => s === 'succeed');
    const responses = () => service.fake!.callbackResponses.filter((r) => r.url === upstream.callbackUrl);
    await waitUntil(() => responses().length === 4, 'four callbacks');

    expect(responses().map((r) => [r.body, r.status])).toEqual([
      ['processing', 200],
      ['succeed', 200],
      ['processing', 200],
      ['succeed', 200],
    ]);
    const callbacks = callbackEvents(await eventsOf(service, auth, taskId));
    expect(callbacks.map((e) => [e.detail?.upstream_status, e.detail?.applied])).toEqual([
      ['processing', true],
      ['succeed', true],
      ['processing', false],
      ['succeed', false],
    ]);
    expect(callbacks.slice(2).every((e) => e.status === 'succeed')).toBe(true);
    const task = (await service.runtime.tasks.findById(taskId))!;
    expect(task.status).toBe('succeed');
    expect(task.result).toEqual({ elements: [expect.objectContaining({ element_id: BIG_ELEMENT_ID })] });
  });
});

describe('Kling callbacks: out of order', () => {
  let service: TestService;
  let auth: string;

  beforeAll(async () => {
    ({ service, auth } = await startService({ callbacks: 'reversed' }));
  });
  afterAll(() => service.stop());

  test('when succeed arrives before processing, then the task ends succeed and the late processing callback is acknowledged and ignored', async () => {
    const { taskId, upstream } = await submitTask(service, auth, (s) => s === 'succeed');
    const responses = () => service.fake!.callbackResponses.filter((r) => r.url === upstream.callbackUrl);
    await waitUntil(() => responses().length === 2, 'both callbacks');

    expect(responses().map((r) => [r.body, r.status])).toEqual([
      ['succeed', 200],
      ['processing', 200],
    ]);
    const callbacks = callbackEvents(await eventsOf(service, auth, taskId));
    expect(callbacks.map((e) => [e.status, e.detail?.upstream_status, e.detail?.applied])).toEqual([
      ['succeed', 'succeed', true],
      ['succeed', 'processing', false],
    ]);
    const task = (await service.runtime.tasks.findById(taskId))!;
    expect(task.status).toBe('succeed');
    expect(task.result).toEqual({ elements: [expect.objectContaining({ element_id: BIG_ELEMENT_ID })] });
  });
});

describe('Kling callbacks: which task and which round they are about', () => {
  let service: TestService;
  let auth: string;

  beforeAll(async () => {
    ({ service, auth } = await startService({ callbacks: 'none' }));
  });
  afterAll(() => service.stop());

  test('when a callback names another upstream task than the one Kling gave us, then it is acknowledged, not applied, and the reason is recorded', async () => {
    const { taskId, upstream } = await submitTask(service, auth, (s) => s === 'submitted');
    const before = (await service.runtime.tasks.findById(taskId))!;

    const response = await postJson(upstream.callbackUrl!, { ...succeedBody(upstream), task_id: `${upstream.task_id}9` });

    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ received: true, applied: false });
    expect(await service.runtime.tasks.findById(taskId)).toEqual(before);
    expect(callbackEvents(await eventsOf(service, auth, taskId)).at(-1)).toMatchObject({
      status: 'submitted',
      detail: { applied: false, reason: 'callback names another upstream task' },
    });
  });

  test("when a callback carries another task's external_task_id, then it is acknowledged, not applied, and the reason is recorded", async () => {
    const { taskId, upstream } = await submitTask(service, auth, (s) => s === 'submitted');
    const before = (await service.runtime.tasks.findById(taskId))!;

    const response = await postJson(upstream.callbackUrl!, { ...succeedBody(upstream), task_info: { external_task_id: `${taskId}_r1` } });

    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ received: true, applied: false });
    expect(await service.runtime.tasks.findById(taskId)).toEqual(before);
    expect(callbackEvents(await eventsOf(service, auth, taskId)).at(-1)).toMatchObject({
      detail: { applied: false, reason: `report about external_task_id ${taskId}_r1, not this round's ${taskId}` },
    });
  });
});

describe('Kling callbacks: ahead of the answer to our submit', () => {
  let service: TestService;
  let auth: string;

  beforeAll(async () => {
    // Kling holds its answer to the create (under the request timeout); the task exists upstream (and may
    // call back) meanwhile.
    ({ service, auth } = await startService({ callbacks: 'none', createDelayMs: 3_000 }, { KLING_REQUEST_TIMEOUT_MS: '10000' }));
  });
  afterAll(() => service.stop());

  test('when processing is called back before the submit is answered, then it is applied with the upstream id and submit time, which neither the late answer nor later callbacks change', async () => {
    const created = await service.http.post('/v1/tasks').set('authorization', auth).send(validImageTask({ external_task_id: uniqueExternalId() }));
    expect(created.status).toBe(202);
    const taskId: string = created.body.task_id;
    await waitUntil(() => service.fake!.taskByExternalId(taskId) !== undefined, 'the create to reach Kling');
    const upstream = service.fake!.taskByExternalId(taskId)!;
    expect((await service.runtime.tasks.findById(taskId))!).toMatchObject({ status: 'queued', upstreamTaskId: null, submittedAt: null });

    const response = await postJson(upstream.callbackUrl!, { ...viewOf(upstream), task_status: 'processing' });

    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ received: true, applied: true, status: 'processing' });
    const applied = (await service.runtime.tasks.findById(taskId))!;
    expect(applied).toMatchObject({ status: 'processing', upstreamTaskId: upstream.task_id, submitInFlight: false });
    expect(applied.submittedAt).toBeInstanceOf(Date);
    await waitUntil(async () => (await eventsOf(service, auth, taskId)).some((e) => e.type === 'submitted'), 'the submit answer to be recorded');
    const after = (await service.runtime.tasks.findById(taskId))!;
    expect(after).toMatchObject({ status: 'processing', upstreamTaskId: upstream.task_id, submittedAt: applied.submittedAt });

    expect(await postJson(upstream.callbackUrl!, succeedBody(upstream)).then((r) => r.json())).toEqual({ received: true, applied: true, status: 'succeed' });
    expect((await service.runtime.tasks.findById(taskId))!).toMatchObject({ status: 'succeed', submittedAt: applied.submittedAt });
  });
});

describe('Kling callbacks: success without the element', () => {
  let service: TestService;
  let auth: string;

  beforeAll(async () => {
    ({ service, auth } = await startService({ callbacks: 'no-result' }));
  });
  afterAll(() => service.stop());

  test('when the succeed callback carries no task_result.elements, then the service reads the task from Kling and finishes it with the element', async () => {
    const { taskId, upstream } = await submitTask(service, auth, (s) => s === 'succeed');

    const task = (await service.runtime.tasks.findById(taskId))!;
    expect(task.result).toEqual({ elements: [expect.objectContaining({ element_id: BIG_ELEMENT_ID })] });
    const reads = service.fake!.queries().filter((q) => q.path.endsWith(`/${upstream.task_id}`) || q.path.endsWith(`/${taskId}`));
    expect(reads.length).toBeGreaterThanOrEqual(1);
    const events = await eventsOf(service, auth, taskId);
    expect(events.map((e) => `${e.type}:${e.status}:${e.detail?.applied ?? ''}`)).toEqual(
      expect.arrayContaining(['callback:processing:false', 'poll:succeed:true']),
    );
  });
});

describe('Kling callbacks: task failed upstream', () => {
  let service: TestService;
  let auth: string;

  beforeAll(async () => {
    ({ service, auth } = await startService({ callbacks: 'normal', outcome: 'failed' }));
  });
  afterAll(() => service.stop());

  test("when Kling calls back failed, then the task fails with Kling's reason", async () => {
    const { taskId } = await submitTask(service, auth, (s) => s === 'failed');

    const task = await service.http.get(`/v1/tasks/${taskId}`).set('authorization', auth);
    expect(task.body).toMatchObject({
      status: 'failed',
      result: null,
      error: { code: 'UPSTREAM_TASK_FAILED', message: 'Image pixel is invalid' },
    });
    expect(task.body.completed_at).not.toBeNull();
  });
});

describe('Kling callbacks: Standard Webhooks signature (KLING_WEBHOOK_SECRET set)', () => {
  const secret = `whsec_${Buffer.from('kling-callback-signing-secret-32b').toString('base64')}`;
  const signer = new Webhook(secret);
  let service: TestService;
  let auth: string;

  beforeAll(async () => {
    ({ service, auth } = await startService({ callbacks: 'none' }, { KLING_WEBHOOK_SECRET: secret }));
  });
  afterAll(() => service.stop());

  /** The callback URL the worker sent upstream, as Kling would have it. */
  const callbackUrlSent = (taskId: string): string => {
    const create = service.fake!.creates().find((r) => r.body?.external_task_id === taskId);
    if (!create) throw new Error(`no create seen for ${taskId}`);
    return create.body.callback_url;
  };

  const signedHeaders = (body: string, id = `msg_${Date.now()}`, at = new Date()) => ({
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': signer.sign(id, at, body),
  });

  test('when a callback is signed correctly, then it is applied', async () => {
    const { taskId, upstream } = await submitTask(service, auth, (s) => s === 'submitted');
    const body = JSON.stringify(succeedBody(upstream));

    const response = await postJson(callbackUrlSent(taskId), body, signedHeaders(body));

    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ applied: true, status: 'succeed' });
    expect((await service.runtime.tasks.findById(taskId))!.status).toBe('succeed');
  });

  test.each([
    ['no signature headers', (_body: string) => ({})],
    ['a signature over another body', (body: string) => signedHeaders(`${body} `)],
    ['a signature made with another secret', (body: string) => {
      const id = 'msg_other';
      const at = new Date();
      const other = new Webhook(`whsec_${Buffer.from('some-other-secret-of-32-bytes!!!').toString('base64')}`);
      return { 'webhook-id': id, 'webhook-timestamp': String(Math.floor(at.getTime() / 1000)), 'webhook-signature': other.sign(id, at, body) };
    }],
    ['a signature whose timestamp is an hour old', (body: string) => signedHeaders(body, 'msg_old', new Date(Date.now() - 3_600_000))],
  ])('when a callback has a valid token but %s, then 401 and the task is unchanged', async (_label, headersFor) => {
    const { taskId, upstream } = await submitTask(service, auth, (s) => s === 'submitted');
    const body = JSON.stringify(succeedBody(upstream));
    const before = await stateOf(service, taskId);

    const response = await postJson(callbackUrlSent(taskId), body, headersFor(body));

    await expectProblem(response, 401, 'INVALID_CALLBACK_TOKEN');
    expect(await stateOf(service, taskId)).toEqual(before);
  });

  test('when a correctly signed callback is not JSON, then 400 and the task is unchanged', async () => {
    const { taskId } = await submitTask(service, auth, (s) => s === 'submitted');
    const body = '{"task_status": "succeed"';
    const before = await stateOf(service, taskId);

    const response = await postJson(callbackUrlSent(taskId), body, signedHeaders(body));

    await expectProblem(response, 400, 'INVALID_JSON');
    expect(await stateOf(service, taskId)).toEqual(before);
  });
});
