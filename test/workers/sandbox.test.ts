import { startTestService, type TestService } from '../helpers/test-service';
import { uniqueExternalId, validImageTask } from '../helpers/factories';

/**
 * Sandbox mode (CONTRACT.md "Configuration"): with no Kling credentials a simulator mounted on our own API
 * at /sandbox/kling accepts the submit and calls back through the same webhook route as real Kling.
 */
describe('sandbox mode (no Kling credentials)', () => {
  let service: TestService;
  let auth: string;

  beforeAll(async () => {
    service = await startTestService({ fakeKling: false });
    ({ auth } = await service.createTenant());
  });
  afterAll(() => service.stop());

  test('when the service has no Kling credentials, then it runs in sandbox mode', () => {
    expect(service.fake).toBeUndefined();
    expect(service.runtime.config.kling.auth).toEqual({ kind: 'sandbox' });
  });

  test('when a task is submitted, then the simulator accepts it and calls back through the webhook route, and the task succeeds with an element', async () => {
    const externalId = uniqueExternalId('sandbox');
    const created = await service.http.post('/v1/tasks').set('authorization', auth).send(validImageTask({ external_task_id: externalId }));
    expect(created.status).toBe(202);
    const taskId: string = created.body.task_id;

    await service.waitForTask(taskId, (task) => task.status === 'succeed');

    const task = await service.http.get(`/v1/tasks/${taskId}`).set('authorization', auth);
    expect(task.status).toBe(200);
    expect(task.body).toMatchObject({ status: 'succeed', attempts: 1, error: null, external_task_id: externalId });
    expect(task.body.upstream_task_id).toEqual(expect.any(String));
    const element = task.body.result.elements[0];
    expect(element.element_id).toMatch(/^\d+$/);
    expect(element.element_name).toBe(validImageTask().element_name);

    const events = await service.http.get(`/v1/tasks/${taskId}/events`).set('authorization', auth);
    expect(events.body.data.map((e: { type: string; status: string }) => `${e.type}:${e.status}`)).toEqual([
      'created:queued',
      'submitted:submitted',
      'callback:processing',
      'callback:succeed',
    ]);

    // The simulator speaks Kling's wire format and knows the task by our task id (sent as external_task_id).
    const upstream = await service.http.get(`/sandbox/kling/v1/general/advanced-custom-elements/${taskId}`);
    expect(upstream.status).toBe(200);
    expect(upstream.body).toMatchObject({
      code: 0,
      data: { task_id: task.body.upstream_task_id, task_status: 'succeed', task_info: { external_task_id: taskId } },
    });
  });
});
