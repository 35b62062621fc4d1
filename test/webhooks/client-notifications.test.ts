import { startTestService, type TestService } from '../helpers/test-service';
import { validImageTask } from '../helpers/factories';
import { WebhookReceiver } from '../helpers/webhook-receiver';
import { newDeliveryId } from '../../src/ids';
import { sendWebhook } from '../../src/webhooks/send-webhook';

async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Creates a task that notifies `receiver` and waits until its succeed notification has arrived. */
async function finishedTaskNotifying(service: TestService, auth: string, receiver: WebhookReceiver, fields: Record<string, unknown> = {}): Promise<string> {
  const created = await service.http.post('/v1/tasks').set('authorization', auth).send(validImageTask({ callback_url: receiver.url, ...fields }));
  const taskId = created.body.task_id as string;
  await waitFor(() => receiver.accepted().some((r) => r.body.status === 'succeed'), 'the succeed notification');
  return taskId;
}

async function notificationEvents(service: TestService, taskId: string) {
  return (await service.runtime.tasks.listEvents(taskId)).filter((e) => e.type === 'notification').map((e) => e.detail as Record<string, unknown>);
}

/** A service of its own for one describe (`env` on top of the tests' defaults), with a tenant and its signing secret. */
async function serviceWithTenant(env: Record<string, string>) {
  const service = await startTestService({ env });
  const tenant = await service.createTenant();
  const secret = (await service.runtime.db.tenant.findUniqueOrThrow({ where: { name: tenant.tenant } })).webhookSecret;
  return { service, tenant, secret };
}

describe('signed notifications to the client', () => {
  let service: TestService;
  let tenant: Awaited<ReturnType<TestService['createTenant']>>;
  let secret: string;

  beforeAll(async () => {
    ({ service, tenant, secret } = await serviceWithTenant({ WEBHOOK_RETRY_SCHEDULE_MS: '50,100,150' }));
  });
  afterAll(() => service.stop());

  test('when the receiver fails the first two deliveries, then the service retries and every status change arrives signed, in order', async () => {
    const receiver = await new WebhookReceiver(secret, 2).start();
    try {
      const created = await service.http.post('/v1/tasks').set('authorization', tenant.auth).send(validImageTask({ callback_url: receiver.url }));
      const taskId = created.body.task_id as string;
      await service.waitForTask(taskId, (t) => t.status === 'succeed');
      await waitFor(() => receiver.accepted().some((r) => r.body.status === 'succeed'), 'the succeed notification');
      // The receiver has answered; wait for the service to record that answer too.
      await waitFor(async () => (await service.runtime.db.webhookDelivery.count({ where: { taskId, state: 'pending' } })) === 0, 'deliveries recorded');

      expect(receiver.received.every((r) => r.verified)).toBe(true);
      expect(receiver.accepted().map((r) => r.body.status)).toEqual(['submitted', 'processing', 'succeed']);
      expect(receiver.accepted().at(-1)!.body).toMatchObject({ task_id: taskId, status: 'succeed', result: { elements: [{ element_id: '987654321987654321' }] } });
      // The two failed attempts were retries of the first notification, under one stable webhook-id.
      const firstId = receiver.received[0]!.headers['webhook-id'];
      expect(receiver.received.slice(0, 3).map((r) => r.headers['webhook-id'])).toEqual([firstId, firstId, firstId]);
      expect(new Set(receiver.accepted().map((r) => r.headers['webhook-id'])).size).toBe(3);
      const events = await notificationEvents(service, taskId);
      expect(events.map((e) => e.outcome)).toEqual(['retrying', 'retrying', 'delivered', 'delivered', 'delivered']);
      expect(events[0]).toMatchObject({ attempt: 1, http_status: 500, retry_in_ms: 50, duration_ms: expect.any(Number) });
    } finally {
      await receiver.stop();
    }
  });

  test('when a task succeeds, then its last notification is the task exactly as GET shows it', async () => {
    const receiver = await new WebhookReceiver(secret).start();
    try {
      const taskId = await finishedTaskNotifying(service, tenant.auth, receiver, { external_task_id: `notify-exact-${Date.now()}` });

      const shown = await service.http.get(`/v1/tasks/${taskId}`).set('authorization', tenant.auth);
      expect(receiver.accepted().at(-1)!.body).toEqual(shown.body);
    } finally {
      await receiver.stop();
    }
  });

  test('when the receiver is down for the whole schedule, then a failed delivery is recorded and the task itself is unaffected', async () => {
    const receiver = await new WebhookReceiver(secret).start();
    const deadUrl = receiver.url;
    await receiver.stop();
    const created = await service.http.post('/v1/tasks').set('authorization', tenant.auth).send(validImageTask({ callback_url: deadUrl }));
    const taskId = created.body.task_id as string;
    await service.waitForTask(taskId, (t) => t.status === 'succeed');

    await waitFor(async () => (await service.runtime.db.webhookDelivery.count({ where: { taskId, state: 'failed' } })) === 3, 'three failed deliveries', 30_000);
    // Each attempt's event is written just after its delivery row.
    await waitFor(async () => (await notificationEvents(service, taskId)).filter((e) => e.outcome === 'failed').length === 3, 'three failed-delivery events');

    const events = await notificationEvents(service, taskId);
    expect(events.filter((e) => e.outcome === 'failed')).toHaveLength(3);
    expect(events.filter((e) => e.outcome === 'retrying')).toHaveLength(9);
    const visible = await service.http.get(`/v1/tasks/${taskId}/events`).set('authorization', tenant.auth);
    expect(visible.body.data.some((e: { type: string; detail: { outcome?: string; error?: string } }) => e.type === 'notification' && e.detail.outcome === 'failed' && e.detail.error)).toBe(true);
    const task = await service.http.get(`/v1/tasks/${taskId}`).set('authorization', tenant.auth);
    expect(task.body).toMatchObject({ status: 'succeed', error: null });
  });

  test('when the client asks for a redelivery, then the latest notification is sent again under a new webhook-id', async () => {
    const receiver = await new WebhookReceiver(secret).start();
    try {
      const taskId = await finishedTaskNotifying(service, tenant.auth, receiver);
      const before = receiver.accepted().length;

      const redeliver = await service.http.post(`/v1/tasks/${taskId}/redeliver`).set('authorization', tenant.auth);

      expect(redeliver.status).toBe(202);
      await waitFor(() => receiver.accepted().length === before + 1, 'the redelivery', 30_000);
      const again = receiver.accepted().at(-1)!;
      expect(again.verified).toBe(true);
      expect(again.body.status).toBe('succeed');
      expect(again.headers['webhook-id']).toBe(redeliver.body.delivery_id);
      expect(receiver.accepted().slice(0, -1).map((r) => r.headers['webhook-id'])).not.toContain(redeliver.body.delivery_id);
    } finally {
      await receiver.stop();
    }
  });

  test('when a task was created on the Kling-compatible surface, then its callback_url gets Kling-shaped, unsigned notifications', async () => {
    const receiver = await new WebhookReceiver(undefined).start();
    try {
      const created = await service.http
        .post('/kling/v1/general/advanced-custom-elements')
        .set('authorization', tenant.auth)
        .send(validImageTask({ callback_url: receiver.url }));
      expect(created.body.code).toBe(0);
      const taskId = created.body.data.task_id as string;

      await waitFor(() => receiver.accepted().some((r) => r.body.task_status === 'succeed'), 'the succeed notification');

      const last = receiver.accepted().at(-1)!;
      expect(last.body).toMatchObject({ task_id: taskId, task_status: 'succeed', task_result: { elements: [{ element_id: '987654321987654321' }] } });
      expect(typeof last.body.updated_at).toBe('number');
      expect(last.headers['webhook-signature']).toBeUndefined();
      expect(last.headers['webhook-id']).toMatch(/^msg_/);
    } finally {
      await receiver.stop();
    }
  });

  test('when a task has no callback_url, then redeliver answers 409 and nothing is sent', async () => {
    const created = await service.http.post('/v1/tasks').set('authorization', tenant.auth).send(validImageTask());
    const redeliver = await service.http.post(`/v1/tasks/${created.body.task_id}/redeliver`).set('authorization', tenant.auth);
    expect(redeliver.status).toBe(409);
    expect(redeliver.body.code).toBe('NOTHING_TO_REDELIVER');
  });
});

describe('private callback addresses', () => {
  let service: TestService;
  let auth: string;

  beforeAll(async () => {
    service = await startTestService({ workers: false, env: { ALLOW_PRIVATE_CALLBACKS: 'false' } });
    ({ auth } = await service.createTenant());
  });
  afterAll(() => service.stop());

  test.each(['http://127.0.0.1:8080/hook', 'http://localhost/hook', 'http://10.1.2.3/hook', 'http://[::1]/hook', 'http://169.254.169.254/latest'])(
    'when callback_url is %p and private callbacks are not allowed, then 400 names callback_url and nothing is stored',
    async (url) => {
      const before = await service.runtime.db.task.count();
      const response = await service.http.post('/v1/tasks').set('authorization', auth).send(validImageTask({ callback_url: url }));
      expect(response.status).toBe(400);
      expect(response.body.errors).toEqual([{ path: 'callback_url', message: expect.stringMatching(/private, loopback or link-local/) }]);
      expect(await service.runtime.db.task.count()).toBe(before);
    },
  );

  test('when a delivery targets a name that resolves to loopback (checked at delivery time), then it is refused without connecting', async () => {
    const receiver = await new WebhookReceiver(undefined).start();
    try {
      const port = new URL(receiver.url).port;
      const outcome = await sendWebhook({ url: `http://localhost:${port}/hook`, id: 'msg_test', body: '{}' }, { timeoutMs: 2_000, allowPrivate: false });
      expect(outcome).toMatchObject({ ok: false, httpStatus: null, error: expect.stringMatching(/private, loopback or link-local/) });
      expect(receiver.received).toHaveLength(0);
      const allowed = await sendWebhook({ url: `http://localhost:${port}/hook`, id: 'msg_test', body: '{}' }, { timeoutMs: 2_000, allowPrivate: true });
      expect(allowed).toMatchObject({ ok: true, httpStatus: 204 });
    } finally {
      await receiver.stop();
    }
  });
});

describe('Idempotency-Key', () => {
  let service: TestService;
  let auth: string;

  beforeAll(async () => {
    service = await startTestService({ workers: false });
    ({ auth } = await service.createTenant());
  });
  afterAll(() => service.stop());

  const post = (key: string, body: Record<string, unknown>) => service.http.post('/v1/tasks').set('authorization', auth).set('idempotency-key', key).send(body);

  test('when ten identical requests with one key arrive at once, then one task is created and all ten answer with it', async () => {
    const key = `key-${Date.now()}-concurrent`;
    const body = validImageTask({ external_task_id: key });

    const answers = await Promise.all(Array.from({ length: 10 }, () => post(key, body)));

    expect(answers.map((a) => a.status)).toEqual(Array(10).fill(202));
    expect(new Set(answers.map((a) => a.body.task_id)).size).toBe(1);
    expect(answers.filter((a) => a.headers['idempotent-replayed'] === 'true')).toHaveLength(9);
    expect(await service.runtime.db.task.count({ where: { externalTaskId: key } })).toBe(1);
    await service.runtime.enqueuer.drain(); // the job is queued just after the answer
    expect(await service.runtime.queues.submit.getJobCountByTypes('waiting', 'prioritized')).toBeGreaterThanOrEqual(1);
  });

  test('when the same key comes back with the same body in another key order, then the original task is answered', async () => {
    const key = `key-${Date.now()}-order`;
    const first = await post(key, { element_name: 'A', element_description: 'd', reference_type: 'image_refer', element_image_list: { frontal_image: 'https://m.example.com/1.png', refer_images: [{ image_url: 'https://m.example.com/2.png' }] } });
    const second = await post(key, { element_image_list: { refer_images: [{ image_url: 'https://m.example.com/2.png' }], frontal_image: 'https://m.example.com/1.png' }, reference_type: 'image_refer', element_description: 'd', element_name: 'A' });
    expect(second.status).toBe(202);
    expect(second.body.task_id).toBe(first.body.task_id);
  });

  test('when the same key comes back with a different body, then 422 names the original task and nothing is stored', async () => {
    const key = `key-${Date.now()}-different`;
    const first = await post(key, validImageTask({ element_name: 'First' }));
    const before = await service.runtime.db.task.count();

    const second = await post(key, validImageTask({ element_name: 'Second' }));

    expect(second.status).toBe(422);
    expect(second.body).toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED', task_id: first.body.task_id });
    expect(await service.runtime.db.task.count()).toBe(before);
  });

  test('when a key is older than 24 hours, then it is forgotten and the request creates a new task', async () => {
    const key = `key-${Date.now()}-expired`;
    const first = await post(key, validImageTask());
    await service.runtime.db.idempotencyKey.updateMany({ where: { key }, data: { createdAt: new Date(Date.now() - 25 * 3_600_000) } });

    const second = await post(key, validImageTask());

    expect(second.status).toBe(202);
    expect(second.body.task_id).not.toBe(first.body.task_id);
  });

  test('when the Idempotency-Key header is malformed, then 400 names it', async () => {
    const response = await post('has spaces in it', validImageTask());
    expect(response.status).toBe(400);
    expect(response.body.errors[0].message).toMatch(/printable ASCII/);
  });
});

describe('a notification left without a job', () => {
  let service: TestService;
  let tenant: Awaited<ReturnType<TestService['createTenant']>>;
  let secret: string;

  beforeAll(async () => {
    ({ service, tenant, secret } = await serviceWithTenant({ SWEEP_INTERVAL_MS: '200', NOTIFY_REQUEUE_AFTER_MS: '300' }));
  });
  afterAll(() => service.stop());

  test('when a pending notification has no job (stored just as its task\'s job finished), then the sweep queues it after NOTIFY_REQUEUE_AFTER_MS and the client receives it', async () => {
    const receiver = await new WebhookReceiver(secret).start();
    try {
      const taskId = await finishedTaskNotifying(service, tenant.auth, receiver);
      await waitFor(async () => (await service.runtime.db.webhookDelivery.count({ where: { taskId, state: 'pending' } })) === 0, 'deliveries recorded');

      const id = newDeliveryId();
      await service.runtime.db.webhookDelivery.create({ data: { id, taskId, url: receiver.url, payload: { task_id: taskId, note: 'stored without a job' } } });

      await waitFor(() => receiver.accepted().some((r) => r.headers['webhook-id'] === id), 'the notification left without a job');
      expect(receiver.accepted().find((r) => r.headers['webhook-id'] === id)!.body).toEqual({ task_id: taskId, note: 'stored without a job' });
      // The receiver has answered; the worker records that answer just after.
      await waitFor(async () => (await service.runtime.db.webhookDelivery.findUniqueOrThrow({ where: { id } })).state !== 'pending', 'the delivery recorded');
      expect(await service.runtime.db.webhookDelivery.findUniqueOrThrow({ where: { id } })).toMatchObject({ state: 'delivered', attempts: 1 });
    } finally {
      await receiver.stop();
    }
  });
});

/**
 * The window the per-task job leaves: a notification stored after the job's last read of the pending ones
 * but before the job has ended. Its own job could not be queued (the task's job id was still taken), so
 * the worker looks again once the job has completed. A trigger in the test's own database stores that
 * notification at the exact moment: when the succeed notification is recorded as delivered, inside the
 * statement that also reads the next pending one (which, reading as the statement began, cannot see it).
 * The sweep is off, so nothing else would deliver it.
 */
describe('a notification stored as its task\'s job ends', () => {
  let service: TestService;
  let tenant: Awaited<ReturnType<TestService['createTenant']>>;
  let secret: string;

  beforeAll(async () => {
    ({ service, tenant, secret } = await serviceWithTenant({ SWEEP_INTERVAL_MS: '3600000', NOTIFY_REQUEUE_AFTER_MS: '3600000' }));
    await service.runtime.db.$executeRawUnsafe(`
      CREATE FUNCTION store_late_notification() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO webhook_deliveries (id, task_id, url, payload)
        VALUES (NEW.id || '_late', NEW.task_id, NEW.url, jsonb_build_object('task_id', NEW.task_id, 'note', 'stored as the job ended'));
        RETURN NULL;
      END $$`);
    await service.runtime.db.$executeRawUnsafe(`
      CREATE TRIGGER late_notification AFTER UPDATE ON webhook_deliveries FOR EACH ROW
      WHEN (OLD.state = 'pending' AND NEW.state = 'delivered' AND NEW.task_state ->> 'status' = 'succeed')
      EXECUTE FUNCTION store_late_notification()`);
  });
  afterAll(() => service.stop());

  test('when a notification is stored after the job\'s last read, then it is delivered once the job completes, without the sweep', async () => {
    const receiver = await new WebhookReceiver(secret).start();
    try {
      const taskId = await finishedTaskNotifying(service, tenant.auth, receiver);

      await waitFor(() => receiver.accepted().some((r) => r.body.note === 'stored as the job ended'), 'the notification stored as the job ended', 5_000);
      expect(receiver.accepted().map((r) => r.body.status ?? r.body.note)).toEqual(['submitted', 'processing', 'succeed', 'stored as the job ended']);
      await waitFor(async () => (await service.runtime.db.webhookDelivery.count({ where: { taskId, state: 'pending' } })) === 0, 'deliveries recorded');
    } finally {
      await receiver.stop();
    }
  });
});

describe('notifications to slow receivers (KLING_CONCURRENCY=1, NOTIFY_CONCURRENCY=4)', () => {
  let service: TestService;
  let tenant: Awaited<ReturnType<TestService['createTenant']>>;

  beforeAll(async () => {
    service = await startTestService({ env: { KLING_CONCURRENCY: '1', NOTIFY_CONCURRENCY: '4' } });
    tenant = await service.createTenant();
  });
  afterAll(() => service.stop());

  test('when receivers take their time, then notifications of different tasks are delivered side by side, beyond the Kling request limit', async () => {
    // Unsigned check: this test is about how many are in flight, not their signatures.
    const receiver = await new WebhookReceiver(undefined, 0, 400).start();
    try {
      const created = await Promise.all(
        [1, 2, 3, 4].map(() => service.http.post('/v1/tasks').set('authorization', tenant.auth).send(validImageTask({ callback_url: receiver.url }))),
      );
      const taskIds = created.map((response) => response.body.task_id as string);
      await waitFor(() => taskIds.every((id) => receiver.accepted().some((r) => r.body.task_id === id && r.body.status === 'succeed')), 'every succeed notification', 30_000);

      expect(receiver.maxInFlight).toBeGreaterThan(1);
    } finally {
      await receiver.stop();
    }
  });
});
