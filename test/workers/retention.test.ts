import { uniqueExternalId, validImageTask } from '../helpers/factories';
import { startTestService, type TestService } from '../helpers/test-service';

const DAY_MS = 24 * 3_600_000;

describe('retention: finished tasks are purged after RETENTION_DAYS', () => {
  let service: TestService;
  let auth: string;

  const submit = async () => {
    const created = await service.http.post('/v1/tasks').set('authorization', auth).send(validImageTask({ external_task_id: uniqueExternalId('kept') }));
    expect(created.status).toBe(202);
    return created.body.task_id as string;
  };
  const eventsOf = (taskId: string) => service.runtime.db.taskEvent.count({ where: { taskId } });
  const backdate = (taskId: string, ageMs: number) =>
    service.runtime.db.task.update({ where: { id: taskId }, data: { completedAt: new Date(Date.now() - ageMs), createdAt: new Date(Date.now() - ageMs - 60_000) } });

  beforeAll(async () => {
    service = await startTestService({ env: { RETENTION_DAYS: '1' } });
    ({ auth } = await service.createTenant());
  });
  afterAll(() => service.stop());

  test('when a finished task is older than the retention, then it and its events are purged, and nothing younger or unfinished is', async () => {
    const expired = await submit();
    const recent = await submit();
    await service.waitForTask(expired, (task) => task.status === 'succeed');
    await service.waitForTask(recent, (task) => task.status === 'succeed');
    await service.runtime.queues.submit.pause();
    const unfinished = await submit();
    await service.runtime.db.task.update({ where: { id: unfinished }, data: { createdAt: new Date(Date.now() - 3 * DAY_MS) } });
    expect(await eventsOf(expired)).toBeGreaterThan(0);

    await backdate(expired, DAY_MS + 60_000);
    await backdate(recent, DAY_MS - 60_000);
    // The sweep runs every 250 ms here.
    const deadline = Date.now() + 10_000;
    while ((await service.runtime.tasks.findById(expired)) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));

    expect(await service.runtime.tasks.findById(expired)).toBeNull();
    expect(await eventsOf(expired)).toBe(0);
    expect(await service.runtime.tasks.findById(recent)).toMatchObject({ status: 'succeed' });
    expect(await eventsOf(recent)).toBeGreaterThan(0);
    expect(await service.runtime.tasks.findById(unfinished)).toMatchObject({ status: 'queued' });
    expect((await service.http.get(`/v1/tasks/${expired}`).set('authorization', auth)).status).toBe(404);
    await service.runtime.queues.submit.resume();
  });

  test('when more finished tasks expired than one statement deletes, then they go in batches, all of them', async () => {
    const tenant = await service.runtime.db.tenant.findFirstOrThrow();
    const old = new Date(Date.now() - 2 * DAY_MS);
    const ids = Array.from({ length: 1_200 }, (_, i) => `tsk_01BATCH${String(i).padStart(18, '0')}`);
    await service.runtime.db.task.createMany({
      data: ids.map((id) => ({ id, tenantId: tenant.id, status: 'succeed' as const, request: {}, completedAt: old, createdAt: old, updatedAt: old })),
    });

    const deadline = Date.now() + 15_000;
    while ((await service.runtime.db.task.count({ where: { id: { in: ids } } })) > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));

    expect(await service.runtime.db.task.count({ where: { id: { in: ids } } })).toBe(0);
  });
});
