import { startTestService, type TestService } from '../helpers/test-service';
import { validImageTask } from '../helpers/factories';

/** The maintenance sweep: lost jobs are re-queued, quiet tasks polled, overdue tasks failed. */

async function submit(service: TestService, auth: string): Promise<string> {
  const created = await service.http.post('/v1/tasks').set('authorization', auth).send(validImageTask());
  expect(created.status).toBe(202);
  return created.body.task_id as string;
}

async function eventTypes(service: TestService, taskId: string): Promise<string[]> {
  return (await service.runtime.tasks.listEvents(taskId)).map((event) => event.type);
}

describe('when Redis forgot a queued task', () => {
  let service: TestService;
  let auth: string;

  beforeAll(async () => {
    service = await startTestService({ workers: false, env: { REQUEUE_AFTER_MS: '200' } });
    ({ auth } = await service.createTenant());
  });
  afterAll(() => service.stop());

  test('when the submit job is gone, then the sweep queues the task again and it reaches succeed, sent to Kling once', async () => {
    const taskId = await submit(service, auth);
    await service.runtime.enqueuer.drain(); // its job is queued just after the answer
    await service.runtime.queues.submit.remove(taskId);
    expect(await service.runtime.queues.submit.getJob(taskId)).toBeUndefined();

    await service.startWorkers();
    await service.waitForTask(taskId, (task) => task.status === 'succeed');

    expect(await eventTypes(service, taskId)).toEqual(expect.arrayContaining(['created', 'requeued', 'submitted']));
    expect(service.fake!.creates().filter((r) => r.body.external_task_id === taskId)).toHaveLength(1);
  });

  test('when a worker died mid-submit (job gone, in-flight mark left), then the sweep clears the mark, looks Kling up first and adopts the task', async () => {
    await service.startWorkers();
    const taskId = await submit(service, auth);
    await service.waitForTask(taskId, (task) => task.status === 'succeed');
    // Replay the crash on a fresh row: Kling has the task, we never heard the answer.
    const replayId = await submit(service, auth);
    await service.waitForTask(replayId, (task) => task.status === 'succeed');
    await service.runtime.db.task.update({
      where: { id: replayId },
      data: { status: 'queued', submitInFlight: true, attempts: 1, upstreamTaskId: null, completedAt: null, result: undefined, updatedAt: new Date(Date.now() - 60_000) },
    });
    await service.runtime.queues.submit.remove(replayId);
    const createsBefore = service.fake!.creates().filter((r) => r.body.external_task_id === replayId).length;

    const done = await service.waitForTask(replayId, (task) => task.status !== 'queued' && !task.submitInFlight);

    expect(done.upstreamTaskId).toBe(service.fake!.taskByExternalId(replayId)!.task_id);
    expect(service.fake!.creates().filter((r) => r.body.external_task_id === replayId)).toHaveLength(createsBefore);
    const events = await service.runtime.tasks.listEvents(replayId);
    expect(events.some((e) => e.type === 'requeued')).toBe(true);
    expect(events.some((e) => e.type === 'submitted' && (e.detail as { adopted?: boolean }).adopted === true)).toBe(true);
  });
});

describe('when Kling never calls back', () => {
  let service: TestService;
  let auth: string;

  beforeAll(async () => {
    service = await startTestService({ fakeKling: { callbacks: 'none' }, env: { KLING_POLL_INTERVAL_MS: '300' } });
    ({ auth } = await service.createTenant());
  });
  afterAll(() => service.stop());

  test('when every callback is lost, then polling brings every task to succeed with its element', async () => {
    const ids = await Promise.all(Array.from({ length: 5 }, () => submit(service, auth)));

    for (const id of ids) {
      const task = await service.waitForTask(id, (t) => t.status === 'succeed');
      expect(task.result).toMatchObject({ elements: [{ element_id: '987654321987654321' }] });
      expect(await eventTypes(service, id)).toContain('poll');
    }
    expect(service.fake!.callbackResponses).toHaveLength(0);
  });
});

describe('when Kling holds a task too long', () => {
  let service: TestService;
  let auth: string;

  beforeAll(async () => {
    // Polling is off (an hour), so nothing but the timeout can end the task.
    service = await startTestService({ fakeKling: { callbacks: 'none' }, env: { KLING_POLL_INTERVAL_MS: '3600000', KLING_TASK_TIMEOUT_MS: '500' } });
    ({ auth } = await service.createTenant());
  });
  afterAll(() => service.stop());

  test('when KLING_TASK_TIMEOUT_MS passes after submission, then the task fails with UPSTREAM_TIMEOUT and a clear message', async () => {
    const taskId = await submit(service, auth);

    const task = await service.waitForTask(taskId, (t) => t.status === 'failed');

    expect(task.error).toEqual({ code: 'UPSTREAM_TIMEOUT', message: expect.stringMatching(/did not finish the task within/) });
    expect(await eventTypes(service, taskId)).toContain('timed_out');
  });
});
