import type { AddressInfo } from 'node:net';
import { startMetricsServer } from '../../src/metrics/metrics-server';
import { uniqueExternalId, validImageTask } from '../helpers/factories';
import { startTestService, type TestService } from '../helpers/test-service';
import { sample } from '../helpers/prometheus';
import { WebhookReceiver } from '../helpers/webhook-receiver';

async function waitUntil(condition: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * The task row is `succeed` a moment before the callback's answer is sent (and counted): wait until the
 * fake Kling has its answer to the succeed callback.
 */
const callbackAnswered = (service: TestService, taskId: string) =>
  waitUntil(async () => service.fake!.callbackResponses.some((r) => r.url.includes(taskId) && r.body === 'succeed' && r.status === 200), 'the succeed callback to be answered');

const postJson = (url: string, body: unknown) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe('Prometheus metrics', () => {
  let service: TestService;
  let auth: string;
  let receiver: WebhookReceiver;

  const scrape = async (): Promise<string> => {
    const response = await service.http.get('/metrics');
    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toMatch(/^text\/plain/);
    return response.text;
  };

  beforeAll(async () => {
    service = await startTestService();
    ({ auth } = await service.createTenant());
    receiver = await new WebhookReceiver(undefined).start();
  });
  afterAll(async () => {
    await service.stop();
    await receiver.stop();
  });

  test('when a task runs through to succeed, then created, finished, duration, upstream, callback and delivery metrics move', async () => {
    const before = await scrape();

    const created = await service.http
      .post('/v1/tasks')
      .set('authorization', auth)
      .send(validImageTask({ external_task_id: uniqueExternalId(), callback_url: receiver.url }));
    expect(created.status).toBe(202);
    await service.waitForTask(created.body.task_id, (task) => task.status === 'succeed');
    await callbackAnswered(service, created.body.task_id);
    // Three notifications (submitted, processing, succeed) are delivered after the status changes.
    await waitUntil(async () => sample(await scrape(), 'kling_tracker_webhook_deliveries_total', { outcome: 'delivered' }) >= sample(before, 'kling_tracker_webhook_deliveries_total', { outcome: 'delivered' }) + 3, 'three deliveries');
    const after = await scrape();

    const delta = (name: string, labels: Record<string, string> = {}) => sample(after, name, labels) - sample(before, name, labels);
    expect(delta('kling_tracker_tasks_created_total', { surface: 'v1' })).toBe(1);
    expect(delta('kling_tracker_tasks_finished_total', { status: 'succeed' })).toBe(1);
    expect(delta('kling_tracker_task_duration_seconds_count', { status: 'succeed' })).toBe(1);
    expect(delta('kling_tracker_task_duration_seconds_bucket', { status: 'succeed', le: '+Inf' })).toBe(1);
    expect(delta('kling_tracker_upstream_request_duration_seconds_count', { operation: 'create', code: '0' })).toBe(1);
    expect(delta('kling_tracker_callbacks_received_total', { outcome: 'accepted' })).toBe(2);
    expect(delta('kling_tracker_webhook_deliveries_total', { outcome: 'delivered' })).toBe(3);
  });

  test('when Kling repeats a callback, sends a stale one or a forged one, then they count as duplicate, stale and rejected', async () => {
    const created = await service.http.post('/v1/tasks').set('authorization', auth).send(validImageTask());
    const taskId: string = created.body.task_id;
    await service.waitForTask(taskId, (task) => task.status === 'succeed');
    await callbackAnswered(service, taskId);
    const upstream = service.fake!.view(service.fake!.taskByExternalId(taskId)!);
    const callbackUrl = service.runtime.callbackTokens.callbackUrl(service.baseUrl, taskId);
    const before = await scrape();

    expect((await postJson(callbackUrl, upstream)).status).toBe(200);
    expect((await postJson(callbackUrl, { ...upstream, task_status: 'processing' })).status).toBe(200);
    expect((await postJson(`${service.baseUrl}/webhooks/kling/${taskId}?token=forged`, upstream)).status).toBe(401);

    const after = await scrape();
    const delta = (outcome: string) =>
      sample(after, 'kling_tracker_callbacks_received_total', { outcome }) - sample(before, 'kling_tracker_callbacks_received_total', { outcome });
    expect([delta('duplicate'), delta('stale'), delta('rejected'), delta('accepted')]).toEqual([1, 1, 1, 0]);
  });

  test('when a finished task is polled, then the poll is counted as skipped', async () => {
    const created = await service.http.post('/v1/tasks').set('authorization', auth).send(validImageTask());
    await service.waitForTask(created.body.task_id, (task) => task.status === 'succeed');
    const before = sample(await scrape(), 'kling_tracker_polls_total', { outcome: 'skipped' });

    await service.runtime.enqueuer.enqueuePoll(created.body.task_id, 'metrics test');

    await waitUntil(async () => sample(await scrape(), 'kling_tracker_polls_total', { outcome: 'skipped' }) === before + 1, 'the poll to be counted');
  });

  test('when scraped, then queue depths per queue and state, and Node defaults, are there, and no label carries a task id', async () => {
    const text = await scrape();

    for (const queue of ['submit-task', 'poll-task', 'notify-client', 'maintenance']) {
      for (const state of ['waiting', 'prioritized', 'active', 'failed', 'delayed']) {
        expect(text).toMatch(new RegExp(`^kling_tracker_queue_jobs\\{queue="${queue}",state="${state}"\\} \\d+$`, 'm'));
      }
    }
    expect(text).toMatch(/^process_cpu_user_seconds_total /m);
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds /m);
    expect(text).not.toContain('tsk_');
  });

  test('when a worker-only process serves WORKER_METRICS_PORT, then GET /metrics there shows its registry', async () => {
    const server = await startMetricsServer(service.runtime.metrics, 0, '127.0.0.1');
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

      const metrics = await fetch(`${base}/metrics`);
      const other = await fetch(`${base}/v1/tasks`);

      expect(metrics.status).toBe(200);
      expect(await metrics.text()).toContain('kling_tracker_tasks_created_total');
      expect(other.status).toBe(404);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});
