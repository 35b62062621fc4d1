import http from 'node:http';
import { SseParser, type SseEvent } from '../../src/live/sse-format';
import { uniqueExternalId, validImageTask } from '../helpers/factories';
import { startSecondApi, startTestService, type TestService } from '../helpers/test-service';

interface OpenStream {
  status: number;
  headers: http.IncomingHttpHeaders;
  events: SseEvent[];
  comments: string[];
  /** Resolves when the server ends the stream. */
  ended: Promise<void>;
  close(): void;
}

/** A Server-Sent Events client over plain HTTP, keeping every event and comment line in arrival order. */
function openStream(baseUrl: string, path: string, auth: string, lastEventId?: string): Promise<OpenStream> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${baseUrl}${path}`, { headers: { authorization: auth, accept: 'text/event-stream', ...(lastEventId ? { 'last-event-id': lastEventId } : {}) } }, (res) => {
      const stream: OpenStream = { status: res.statusCode ?? 0, headers: res.headers, events: [], comments: [], ended: new Promise((done) => res.on('close', done)), close: () => req.destroy() };
      const parser = new SseParser();
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        const { events, comments } = parser.push(chunk);
        stream.events.push(...events);
        stream.comments.push(...comments);
      });
      resolve(stream);
    });
    req.on('error', reject);
  });
}

const statuses = (stream: OpenStream) => stream.events.map((event) => JSON.parse(event.data).status as string);

describe('live status: SSE stream and Prefer: wait', () => {
  let service: TestService;
  let auth: string;

  const submit = async (headers: Record<string, string> = {}) => {
    const created = await service.http.post('/v1/tasks').set('authorization', auth).set(headers).send(validImageTask({ external_task_id: uniqueExternalId('live') }));
    expect(created.status).toBe(202);
    return created;
  };

  beforeAll(async () => {
    // Kling's callbacks 300 ms apart: each state lasts long enough to be seen on its own.
    service = await startTestService({ fakeKling: { callbackDelayMs: 300 }, env: { SSE_HEARTBEAT_MS: '200' } });
    ({ auth } = await service.createTenant());
  });
  afterAll(() => service.stop());

  test('when a task is watched on another API process, then every status change arrives there in order, as GET shows it, and the stream ends after succeed', async () => {
    // No heartbeat re-reads during the test: only the cross-process announcements can move this stream.
    const other = await startSecondApi(service, { sseHeartbeatMs: 60_000 });
    try {
      await service.runtime.queues.submit.pause();
      const taskId = (await submit()).body.task_id as string;
      const stream = await openStream(other.baseUrl, `/v1/tasks/${taskId}/stream`, auth);
      expect(stream.status).toBe(200);
      expect(stream.headers['content-type']).toMatch(/^text\/event-stream/);

      await service.runtime.queues.submit.resume();
      await stream.ended;

      expect(statuses(stream)).toEqual(['queued', 'submitted', 'processing', 'succeed']);
      expect(stream.events.every((event) => event.event === 'task')).toBe(true);
      const ids = stream.events.map((event) => Number(event.id));
      expect([...ids].sort((a, b) => a - b)).toEqual(ids);
      expect(new Set(ids).size).toBe(ids.length);
      const final = await service.http.get(`/v1/tasks/${taskId}`).set('authorization', auth);
      expect(JSON.parse(stream.events.at(-1)!.data!)).toEqual(final.body);
    } finally {
      await service.runtime.queues.submit.resume();
      await other.stop();
    }
  });

  test('when a client reconnects with Last-Event-ID, then it gets only what it missed, and nothing once it has the terminal state', async () => {
    const taskId = (await submit()).body.task_id as string;
    const first = await openStream(service.baseUrl, `/v1/tasks/${taskId}/stream`, auth);
    await first.ended;
    const processing = first.events.find((event) => JSON.parse(event.data!).status === 'processing')!;

    const resumed = await openStream(service.baseUrl, `/v1/tasks/${taskId}/stream`, auth, processing.id);
    await resumed.ended;
    const done = await openStream(service.baseUrl, `/v1/tasks/${taskId}/stream`, auth, first.events.at(-1)!.id);
    await done.ended;

    expect(statuses(resumed)).toEqual(['succeed']);
    expect(resumed.events[0]!.id).toBe(first.events.at(-1)!.id);
    expect(done.events).toEqual([]);
  });

  test('when nothing changes for a while, then the stream sends heartbeat comments and stays open', async () => {
    await service.runtime.queues.submit.pause();
    const taskId = (await submit()).body.task_id as string;
    const stream = await openStream(service.baseUrl, `/v1/tasks/${taskId}/stream`, auth);
    try {
      const heartbeats = () => stream.comments.filter((comment) => comment === 'heartbeat').length;
      const deadline = Date.now() + 10_000;
      while (heartbeats() < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));

      expect(heartbeats()).toBeGreaterThanOrEqual(2);
      expect(statuses(stream)).toEqual(['queued']);
    } finally {
      stream.close();
      await service.runtime.tasks.transition(taskId, 'canceled', { completedAt: new Date() }, { type: 'canceled' });
      await service.runtime.queues.submit.resume();
    }
  });

  test('when another tenant asks for the stream, then 404 and no stream', async () => {
    const taskId = (await submit()).body.task_id as string;
    const stranger = await service.createTenant();

    const response = await service.http.get(`/v1/tasks/${taskId}/stream`).set('authorization', stranger.auth);

    expect(response.status).toBe(404);
    expect(response.headers['content-type']).toMatch(/problem\+json/);
  });

  test('when GET asks Prefer: wait=10 for a task in flight, then the answer comes once it has succeeded', async () => {
    const taskId = (await submit()).body.task_id as string;

    const response = await service.http.get(`/v1/tasks/${taskId}`).set('authorization', auth).set('prefer', 'wait=10');

    expect(response.status).toBe(200);
    expect(response.headers['preference-applied']).toBe('wait=10');
    expect(response.body.status).toBe('succeed');
  });

  test('when POST asks Prefer: wait=10, then the answer is the finished task (still 202, with Location)', async () => {
    const response = await submit({ prefer: 'wait=10' });

    expect(response.headers['preference-applied']).toBe('wait=10');
    expect(response.headers.location).toBe(`/v1/tasks/${response.body.task_id}`);
    expect(response.body.status).toBe('succeed');
  });

  test('when the wait runs out first, then the task is answered as it stands', async () => {
    await service.runtime.queues.submit.pause();
    try {
      const taskId = (await submit()).body.task_id as string;

      const response = await service.http.get(`/v1/tasks/${taskId}`).set('authorization', auth).set('prefer', 'wait=1');

      expect(response.status).toBe(200);
      expect(response.headers['preference-applied']).toBe('wait=1');
      expect(response.body.status).toBe('queued');
      await service.runtime.tasks.transition(taskId, 'canceled', { completedAt: new Date() }, { type: 'canceled' });
    } finally {
      await service.runtime.queues.submit.resume();
    }
  });

  test('when Prefer asks for more than 60 s or for something else, then the wait is capped at 60 s and other preferences are ignored', async () => {
    const done = (await submit({ prefer: 'wait=10' })).body.task_id as string;

    const long = await service.http.get(`/v1/tasks/${done}`).set('authorization', auth).set('prefer', 'respond-async, wait=600');
    const other = await service.http.get(`/v1/tasks/${done}`).set('authorization', auth).set('prefer', 'respond-async');

    expect(long.headers['preference-applied']).toBe('wait=60');
    expect(long.body.status).toBe('succeed');
    expect(other.headers['preference-applied']).toBeUndefined();
  });
});
