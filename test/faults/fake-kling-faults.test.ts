import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { validImageTask } from '../helpers/factories';
import { startFakeKling, type FakeKling } from '../helpers/fake-kling';
import { freePort, waitUntil } from '../helpers/fault-utils';

/** The fake Kling's fault options (all off by default), exercised over HTTP without the service. */

const ELEMENTS = '/v1/general/advanced-custom-elements';

async function create(fake: FakeKling, body: Record<string, unknown>): Promise<{ status: number; body: any; retryAfter: string | null }> {
  const response = await fetch(`${fake.baseUrl}${ELEMENTS}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: await response.json(), retryAfter: response.headers.get('retry-after') };
}

describe('fake Kling with rateLimit', () => {
  let fake: FakeKling;
  beforeAll(async () => {
    fake = await startFakeKling({ rateLimit: { max: 3, windowMs: 1_500 }, callbacks: 'none' });
  });
  afterAll(() => fake.stop());

  test('when more creates than the limit arrive in one window, then the extra ones get 429 code 1302 with Retry-After and are not accepted', async () => {
    const answers = await Promise.all(Array.from({ length: 5 }, (_, i) => create(fake, validImageTask({ external_task_id: `rl-${i}` }))));

    expect(answers.filter((a) => a.status === 200)).toHaveLength(3);
    const limited = answers.filter((a) => a.status === 429);
    expect(limited).toHaveLength(2);
    for (const answer of limited) {
      expect(answer.body).toMatchObject({ code: 1302, message: 'rate limit exceeded' });
      expect(answer.retryAfter).toBe('2');
    }
    expect(fake.acceptedCreateTimes).toHaveLength(3);
    expect(fake.rateLimitedCreates).toBe(2);
    expect(fake.tasks.size).toBe(3);
    expect(fake.maxAcceptedInWindow()).toBe(3);
  });
});

describe('fake Kling with callbackRetries', () => {
  let fake: FakeKling;
  let receiver: Server;
  let receiverUrl: string;
  let answers: number[];

  beforeAll(async () => {
    fake = await startFakeKling({ callbackRetries: { attempts: 3, delayMs: 20 }, callbackDelayMs: 5 });
    receiver = createServer((req, res) => {
      req.resume();
      res.writeHead(answers.shift() ?? 200).end();
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/cb`;
  });
  afterAll(async () => {
    await fake.stop();
    receiver.closeAllConnections();
    await new Promise((resolve) => receiver.close(resolve));
  });

  test('when the receiver answers 503 twice, then the callback is re-sent until 200, every try recorded', async () => {
    answers = [503, 503];
    await create(fake, validImageTask({ callback_url: receiverUrl }));
    await waitUntil(() => fake.callbackResponses.filter((r) => r.body === 'succeed').length === 1, 'the succeed callback');

    expect(fake.callbackResponses.map((r) => [r.body, r.status, r.attempt])).toEqual([
      ['processing', 503, 1],
      ['processing', 503, 2],
      ['processing', 200, 3],
      ['succeed', 200, 1],
    ]);
  });

  test('when nothing listens at the callback URL, then each try is recorded as status 0 with the error, and the fake gives up after the last', async () => {
    const url = `http://127.0.0.1:${await freePort()}/cb`;
    const before = fake.callbackResponses.length;
    await create(fake, validImageTask({ callback_url: url }));
    await waitUntil(() => fake.callbackResponses.length - before === 8, '4 tries each for processing and succeed');

    const tries = fake.callbackResponses.slice(before);
    expect(tries.every((r) => r.status === 0 && r.error === 'ECONNREFUSED')).toBe(true);
    expect(tries.map((r) => r.attempt)).toEqual([1, 2, 3, 4, 1, 2, 3, 4]);
  });
});

describe('fake Kling with createDelayMs and uniqueExternalTaskId: false', () => {
  let fake: FakeKling;
  beforeAll(async () => {
    fake = await startFakeKling({ createDelayMs: 300, uniqueExternalTaskId: false, callbacks: 'none' });
  });
  afterAll(() => fake.stop());

  test('when a create is held, then the task already exists upstream (look-ups find it) and the create counts as in flight', async () => {
    const pending = create(fake, validImageTask({ external_task_id: 'held-1' }));
    await waitUntil(() => fake.createsInFlight === 1, 'the create to be in flight');
    const lookup = await fetch(`${fake.baseUrl}${ELEMENTS}/held-1`);
    expect(lookup.status).toBe(200);
    expect((await pending).status).toBe(200);
    expect(fake.createsInFlight).toBe(0);
  });

  test('when the same external_task_id is created twice, then the fake makes two tasks instead of answering 1201', async () => {
    expect((await create(fake, validImageTask({ external_task_id: 'twice' }))).status).toBe(200);
    expect((await create(fake, validImageTask({ external_task_id: 'twice' }))).status).toBe(200);
    expect(fake.tasksPerExternalId().get('twice')).toBe(2);
  });
});
