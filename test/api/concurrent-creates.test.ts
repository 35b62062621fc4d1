import { newTaskId } from '../../src/ids';
import { startTestService, type TestService } from '../helpers/test-service';
import { uniqueExternalId, validImageTask } from '../helpers/factories';

type Tenant = Awaited<ReturnType<TestService['createTenant']>> & { id: string };

/*
 * Creates that arrive together share one INSERT and one Redis round trip (src/batcher.ts). Whatever they
 * share, each must come out exactly as if it had been sent alone: its own row, event, job and answer,
 * and a conflict in one must not fail its neighbours.
 */
describe('many creates at once (workers off: tasks stay queued)', () => {
  let service: TestService;

  beforeAll(async () => {
    service = await startTestService({ workers: false });
  });
  afterAll(() => service.stop());

  /** A new tenant, with its id as stored (rows and jobs carry the id; createTenant answers the name). */
  const newTenant = async (): Promise<Tenant> => {
    const created = await service.createTenant();
    const { id } = await service.runtime.db.tenant.findUniqueOrThrow({ where: { name: created.tenant }, select: { id: true } });
    return { ...created, id };
  };

  const post = (tenant: Tenant, body: Record<string, unknown>, idempotencyKey?: string) => {
    const request = service.http.post('/v1/tasks').set('authorization', tenant.auth);
    return (idempotencyKey ? request.set('idempotency-key', idempotencyKey) : request).send(body);
  };

  test('when 60 creates from two tenants arrive at once, then each gets its own task, event, submit job and fair-share place', async () => {
    const tenants = [await newTenant(), await newTenant()];
    const sent = Array.from({ length: 60 }, (_, index) => ({ tenant: tenants[index % 2]!, externalId: uniqueExternalId('burst') }));

    const responses = await Promise.all(sent.map(({ tenant, externalId }) => post(tenant, validImageTask({ external_task_id: externalId }))));

    expect(responses.map((response) => response.status)).toEqual(sent.map(() => 202));
    const ids = responses.map((response) => response.body.task_id as string);
    expect(new Set(ids).size).toBe(60);
    const rows = await service.runtime.db.task.findMany({ where: { id: { in: ids } }, include: { events: true } });
    expect(rows).toHaveLength(60);
    for (const [index, response] of responses.entries()) {
      const row = rows.find((candidate) => candidate.id === response.body.task_id)!;
      expect(row).toMatchObject({ tenantId: sent[index]!.tenant.id, externalTaskId: sent[index]!.externalId, status: 'queued' });
      expect(row.events.map((event) => `${event.type}:${event.status}`)).toEqual(['created:queued']);
      expect(response.body).toMatchObject({ external_task_id: sent[index]!.externalId, status: 'queued' });
    }
    // They were committed together: rows of one statement share its transaction's timestamp.
    expect(new Set(rows.map((row) => row.createdAt.getTime())).size).toBeLessThan(60);

    await service.runtime.enqueuer.drain(); // jobs are queued just after the answers
    const jobs = await Promise.all(ids.map((id) => service.runtime.queues.submit.getJob(id)));
    expect(jobs.map((job) => job?.data.taskId)).toEqual(ids);
    for (const tenant of tenants) {
      const places = jobs.filter((job) => job?.data.tenantId === tenant.id).map((job) => job!.opts.priority);
      expect([...places].sort((a, b) => a! - b!)).toEqual(Array.from({ length: 30 }, (_, index) => index + 1));
    }
  });

  test('when one create among many reuses a stored external_task_id, then only it is refused and the others are stored', async () => {
    const tenant = await newTenant();
    const taken = uniqueExternalId('taken');
    const first = await post(tenant, validImageTask({ external_task_id: taken }));
    expect(first.status).toBe(202);
    const fresh = Array.from({ length: 20 }, () => uniqueExternalId('fresh'));
    const bodies = [...fresh.slice(0, 10), taken, ...fresh.slice(10)].map((externalId) => validImageTask({ external_task_id: externalId }));

    const responses = await Promise.all(bodies.map((body) => post(tenant, body)));

    const refused = responses[10]!;
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ code: 'EXTERNAL_TASK_ID_CONFLICT', task_id: first.body.task_id });
    expect(refused.body.errors).toEqual([expect.objectContaining({ path: 'external_task_id' })]);
    const accepted = responses.filter((_, index) => index !== 10);
    expect(accepted.map((response) => response.status)).toEqual(fresh.map(() => 202));
    const stored = await service.runtime.db.task.findMany({ where: { tenantId: tenant.id }, select: { id: true, externalTaskId: true } });
    expect(stored).toHaveLength(21);
    expect(stored.filter((row) => row.externalTaskId === taken).map((row) => row.id)).toEqual([first.body.task_id]);
    await service.runtime.enqueuer.drain();
    const jobs = await Promise.all(stored.map((row) => service.runtime.queues.submit.getJob(row.id)));
    expect(jobs.every((job) => job !== undefined)).toBe(true);
  });

  test('when the same Idempotency-Key arrives several times at once among other creates, then it makes one task and each repeat gets it', async () => {
    const tenant = await newTenant();
    const key = `key-${uniqueExternalId()}`;
    const repeated = validImageTask({ external_task_id: uniqueExternalId('once') });
    const others = Array.from({ length: 10 }, () => validImageTask({ external_task_id: uniqueExternalId('other') }));

    const responses = await Promise.all([
      post(tenant, repeated, key),
      ...others.map((body) => post(tenant, body)),
      post(tenant, repeated, key),
      post(tenant, repeated, key),
    ]);

    expect(responses.map((response) => response.status)).toEqual(responses.map(() => 202));
    const keyed = [responses[0]!, responses[11]!, responses[12]!];
    expect(new Set(keyed.map((response) => response.body.task_id)).size).toBe(1);
    expect(keyed.filter((response) => response.headers['idempotent-replayed'] === 'true')).toHaveLength(2);
    expect(await service.runtime.db.task.count({ where: { tenantId: tenant.id } })).toBe(11);
  });

  test('when a create is stored again after its first attempt committed (its answer lost on the way back), then the stored task is the answer and nothing is doubled', async () => {
    const tenant = await newTenant();
    const task = { id: newTaskId(), tenantId: tenant.id, externalTaskId: uniqueExternalId('again'), request: { element_name: 'Again' }, callbackUrl: null };
    const first = await service.runtime.tasks.insert(task);

    const again = await service.runtime.tasks.insert(task);

    expect(again).toMatchObject({ id: first.id, externalTaskId: task.externalTaskId, status: 'queued' });
    expect(await service.runtime.db.task.count({ where: { tenantId: tenant.id } })).toBe(1);
    expect(await service.runtime.db.taskEvent.count({ where: { taskId: first.id } })).toBe(1);
  });

  test('when many reads of single tasks arrive together, then each caller gets its own task, another tenant\'s or a missing one is not found', async () => {
    const [owner, other] = [await newTenant(), await newTenant()];
    const created = await Promise.all(Array.from({ length: 12 }, () => post(owner, validImageTask({ external_task_id: uniqueExternalId('read') }))));
    const ids = created.map((response) => response.body.task_id as string);
    const missing = newTaskId();

    // Shared reads (one SELECT for those that arrive together) must answer exactly as separate ones would.
    const [byId, forOwner, forOther, twice, absent] = await Promise.all([
      Promise.all(ids.map((id) => service.runtime.tasks.findById(id))),
      Promise.all(ids.map((id) => service.runtime.tasks.findForTenant(owner.id, id))),
      Promise.all(ids.map((id) => service.runtime.tasks.findForTenant(other.id, id))),
      Promise.all([service.runtime.tasks.findById(ids[0]!), service.runtime.tasks.findById(ids[0]!)]),
      service.runtime.tasks.findById(missing),
    ]);

    expect(byId.map((task) => task?.id)).toEqual(ids);
    expect(forOwner.map((task) => [task?.id, task?.tenantId])).toEqual(ids.map((id) => [id, owner.id]));
    expect(forOther).toEqual(ids.map(() => null));
    expect(twice[0]).toEqual(twice[1]);
    expect(twice[0]).not.toBe(twice[1]);
    expect(absent).toBeNull();
    const gets = await Promise.all([...ids.map((id) => service.http.get(`/v1/tasks/${id}`).set('authorization', owner.auth)), ...ids.map((id) => service.http.get(`/v1/tasks/${id}`).set('authorization', other.auth))]);
    expect(gets.map((response) => response.status)).toEqual([...ids.map(() => 200), ...ids.map(() => 404)]);
    expect(gets.slice(0, ids.length).map((response) => response.body.task_id)).toEqual(ids);
  });
});
