import { Writable } from 'node:stream';
import { createLogger } from '../../src/logger';
import { uniqueExternalId, validImageTask } from '../helpers/factories';
import { startTestService, type TestService } from '../helpers/test-service';

/** Collects the service's JSON log lines. */
class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    this.lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    done();
  }
  get records(): Record<string, any>[] {
    return this.lines.map((line) => JSON.parse(line));
  }
  get text(): string {
    return this.lines.join('\n');
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

async function waitForLine(logs: LogCapture, predicate: (record: Record<string, any>) => boolean, timeoutMs = 5_000): Promise<Record<string, any>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = logs.records.find(predicate);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`No such log line; got:\n${logs.text}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('request logs', () => {
  const logs = new LogCapture();
  let service: TestService;
  let apiKey: string;
  let auth: string;

  beforeAll(async () => {
    service = await startTestService({ logStream: logs });
    ({ apiKey, auth } = await service.createTenant());
  });
  afterAll(() => service.stop());

  test('when a request carries X-Request-Id, then it is echoed and the request line has it, the task id, and no API key', async () => {
    const created = await service.http.post('/v1/tasks').set('authorization', auth).send(validImageTask({ external_task_id: uniqueExternalId() }));
    const taskId: string = created.body.task_id;

    const read = await service.http.get(`/v1/tasks/${taskId}`).set('authorization', auth).set('x-request-id', 'client-req-42');

    expect(read.headers['x-request-id']).toBe('client-req-42');
    const line = await waitForLine(logs, (record) => record.requestId === 'client-req-42' && record.res !== undefined);
    expect(line).toMatchObject({ level: 30, taskId, req: { method: 'GET', url: `/v1/tasks/${taskId}` }, res: { statusCode: 200 } });
    expect(line.req.headers.authorization).toBe('[redacted]');
    expect(typeof line.responseTime).toBe('number');
    expect(logs.text).not.toContain(apiKey);
  });

  test('when a task is created, then its request line names the new task id', async () => {
    const created = await service.http.post('/v1/tasks').set('authorization', auth).send(validImageTask());

    const requestId = created.headers['x-request-id'];
    expect(requestId).toMatch(UUID);
    const line = await waitForLine(logs, (record) => record.requestId === requestId && record.res !== undefined);
    expect(line).toMatchObject({ taskId: created.body.task_id, req: { method: 'POST', url: '/v1/tasks' }, res: { statusCode: 202 } });
  });

  test('when a Kling-compatible request carries X-Request-Id, then it is the envelope request_id too', async () => {
    const response = await service.http.get('/kling/v1/general/advanced-custom-elements').set('authorization', auth).set('x-request-id', 'kling-req-7');

    expect(response.headers['x-request-id']).toBe('kling-req-7');
    expect(response.body.request_id).toBe('kling-req-7');
  });

  test('when X-Request-Id is not a plain token, then a fresh id replaces it', async () => {
    const response = await service.http.get('/healthz').set('x-request-id', 'bad id {"level":60}');

    expect(response.headers['x-request-id']).toMatch(UUID);
  });

  test('when Kling calls back with its token in the URL, then the logged URL hides the token', async () => {
    const created = await service.http.post('/v1/tasks').set('authorization', auth).send(validImageTask());
    const taskId: string = created.body.task_id;
    await service.waitForTask(taskId, (task) => task.status === 'succeed');
    const token = service.runtime.callbackTokens.tokenFor(taskId);

    const callbackLine = await waitForLine(logs, (record) => record.res !== undefined && record.req?.url?.startsWith(`/webhooks/kling/${taskId}`));

    expect(callbackLine.req.url).toBe(`/webhooks/kling/${taskId}?token=[redacted]`);
    expect(callbackLine.taskId).toBe(taskId);
    expect(logs.text).not.toContain(token);
    // The handler's own line carries the same request id.
    expect(logs.records.some((record) => record.msg === 'Kling callback' && record.requestId === callbackLine.requestId)).toBe(true);
  });

  test('when an error is answered, then its log line carries the request id', async () => {
    const response = await service.http.get('/v1/tasks').set('authorization', 'Bearer not-a-key').set('x-request-id', 'req-unauthorized');

    expect(response.status).toBe(401);
    const line = await waitForLine(logs, (record) => record.requestId === 'req-unauthorized' && record.res !== undefined);
    expect(line.res.statusCode).toBe(401);
    expect(logs.text).not.toContain('not-a-key');
  });
});

describe('logger', () => {
  test('when a log object carries a base64 image or secrets, then they are replaced', () => {
    const logs = new LogCapture();
    const logger = createLogger({ level: 'info', destination: logs });
    const image = Buffer.alloc(3_000, 7).toString('base64');

    logger.info({ task: { request: { frontal: image, refer: [`data:image/png;base64,${image}`] } }, api_key: 'ket_secret', detail: { webhook_secret: 'whsec_x' } }, 'x');

    const [line] = logs.records;
    expect(line!.task.request.frontal).toBe(`[base64 redacted: ${image.length} chars]`);
    expect(line!.task.request.refer[0]).toMatch(/^\[base64 redacted/);
    expect(logs.text).not.toContain('ket_secret');
    expect(logs.text).not.toContain('whsec_x');
  });

  test('when secrets sit in headers, a parsed query string or an error, then they are censored and the rest is kept', () => {
    const logs = new LogCapture();
    const logger = createLogger({ level: 'info', destination: logs });
    const query = Object.assign(Object.create(null) as Record<string, string>, { token: 'cb_token_1', page: '2' });
    const error = Object.assign(new Error('upstream said no'), { token: 'err_token_2', status: 401 });
    const request = { element_name: 'Hero', element_image_list: { frontal_image: 'https://example.com/secret-face.png' } };

    logger.info({ req: { headers: { authorization: 'Bearer ket_abc', cookie: 'sid=1', host: 'api.test' }, query }, request }, 'first');
    logger.error({ err: error }, 'second');

    const [first, second] = logs.records;
    expect(first!.req.headers).toEqual({ authorization: '[redacted]', cookie: '[redacted]', host: 'api.test' });
    expect(first!.req.query).toEqual({ token: '[redacted]', page: '2' });
    expect(first!.request).toEqual({ element_name: 'Hero', element_image_list: '[redacted]' });
    expect(second!.err.message).toBe('upstream said no');
    expect(second!.err.status).toBe(401);
    expect(second!.err.token).toBe('[redacted]');
    for (const secret of ['ket_abc', 'sid=1', 'cb_token_1', 'err_token_2', 'secret-face']) expect(logs.text).not.toContain(secret);
  });

  test('when a logged object is censored, then the caller\'s object is left as it was', () => {
    const logs = new LogCapture();
    const logger = createLogger({ level: 'info', destination: logs });
    const detail = { nested: { api_key: 'ket_keep_me' } };

    logger.info({ detail }, 'x');

    expect(logs.records[0]!.detail.nested.api_key).toBe('[redacted]');
    expect(detail.nested.api_key).toBe('ket_keep_me');
  });
});
