import { uniqueExternalId, validImageTask } from '../helpers/factories';
import { startTestService, type TestService } from '../helpers/test-service';

describe('queue position of a queued task', () => {
  let service: TestService;

  beforeAll(async () => {
    service = await startTestService();
  });
  afterAll(() => service.stop());

  const submit = async (auth: string) => {
    const created = await service.http.post('/v1/tasks').set('authorization', auth).send(validImageTask({ external_task_id: uniqueExternalId('place') }));
    expect(created.status).toBe(202);
    return created.body.task_id as string;
  };

  test('when tenants have tasks waiting, then a queued task shows how many of its tenant\'s and of all go before it (tenants take turns), with no estimate before any pace is known', async () => {
    const a = await service.createTenant();
    const b = await service.createTenant();
    await service.runtime.queues.submit.pause();
    try {
      for (let i = 0; i < 5; i++) await submit(a.auth);
      const firstOfB = await submit(b.auth);
      const secondOfB = await submit(b.auth);

      const first = await service.http.get(`/v1/tasks/${firstOfB}`).set('authorization', b.auth);
      const second = await service.http.get(`/v1/tasks/${secondOfB}`).set('authorization', b.auth);

      // B's first shares turn 1 with A's first; B's second comes after A's first two.
      expect(first.body.queue_position).toEqual({ tenant: 0, all: 1, per_second: null, estimated_start_at: null });
      expect(second.body.queue_position).toMatchObject({ tenant: 1, all: 3 });
      const listed = await service.http.get('/v1/tasks').set('authorization', b.auth);
      expect(listed.body.data[0].queue_position).toBeUndefined();
    } finally {
      await service.runtime.queues.submit.resume();
    }
  });

  test('when tasks have recently gone to Kling, then a queued task gets an estimated start from that pace; a finished one has no position', async () => {
    const tenant = await service.createTenant();
    const done = await submit(tenant.auth);
    await service.waitForTask(done, (task) => task.status === 'succeed');
    await service.runtime.queues.submit.pause();
    try {
      await submit(tenant.auth);
      const waiting = await submit(tenant.auth);

      const view = await service.http.get(`/v1/tasks/${waiting}`).set('authorization', tenant.auth);

      expect(view.body.queue_position.tenant).toBe(1);
      expect(view.body.queue_position.per_second).toBeGreaterThan(0);
      expect(Date.parse(view.body.queue_position.estimated_start_at)).toBeGreaterThan(Date.now() - 1_000);
      expect((await service.http.get(`/v1/tasks/${done}`).set('authorization', tenant.auth)).body.queue_position).toBeUndefined();
    } finally {
      await service.runtime.queues.submit.resume();
    }
  });
});
