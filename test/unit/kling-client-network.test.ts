import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createHttpExchange } from '../../src/upstream/http-exchange';
import { createKlingClient, ELEMENTS_PATH } from '../../src/upstream/kling-client';
import { UpstreamError } from '../../src/upstream/upstream-error';

/**
 * How the Kling client reads answers and reports network failures, against a real server on loopback
 * whose behaviour each test sets: whether a request may have reached Kling decides whether a retry must
 * look the task up first (never send it twice).
 */
type Behaviour = (req: http.IncomingMessage, res: http.ServerResponse) => void;

let server: http.Server;
let baseUrl: string;
let behaviour: Behaviour;
/** Every connection the server accepted, in order (open or closed). */
const accepted: Socket[] = [];
const requests: { method: string; url: string; body: string; authorization?: string; contentType?: string; userAgent?: string }[] = [];

const TASK = { task_id: '880012345678901234', task_status: 'submitted', created_at: 1, updated_at: 1 };
const envelope = (data: unknown) => JSON.stringify({ code: 0, message: 'SUCCEED', request_id: 'r', data });

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', body, authorization: req.headers.authorization, contentType: req.headers['content-type'], userAgent: req.headers['user-agent'] });
      behaviour(req, res);
    });
  });
  server.on('connection', (socket) => accepted.push(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const socket of accepted) socket.destroy();
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  requests.length = 0;
});

/** Answers the first request of each connection; closes the connection on the next one without answering. */
const requestsPerConnection = new WeakMap<Socket, number>();
const dropSecondRequestOfEachConnection: Behaviour = (req, res) => {
  const count = (requestsPerConnection.get(req.socket) ?? 0) + 1;
  requestsPerConnection.set(req.socket, count);
  if (count > 1) req.socket.destroy();
  else res.end(envelope(TASK));
};

const client = (timeoutMs = 2_000) => createKlingClient({ baseUrl, auth: { kind: 'bearer', apiKey: 'test-key' }, timeoutMs, maxInFlight: 4 });

async function failureOf(promise: Promise<unknown>): Promise<UpstreamError> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(UpstreamError);
  return error as UpstreamError;
}

describe('Kling client over the network', () => {
  test('when Kling answers, then the request carried the JSON body, auth and our User-Agent, and the task is read from the whole answer', async () => {
    behaviour = (_req, res) => {
      res.setHeader('content-type', 'application/json');
      // In two writes: the answer is read to its end, not from the first chunk.
      const text = envelope(TASK);
      res.write(text.slice(0, 10));
      setTimeout(() => res.end(text.slice(10)), 20);
    };
    const kling = client();
    const task = await kling.createElement({ element_name: 'ü name' });
    expect(task).toMatchObject({ task_id: TASK.task_id, task_status: 'submitted' });
    expect(requests).toEqual([
      { method: 'POST', url: ELEMENTS_PATH, body: JSON.stringify({ element_name: 'ü name' }), authorization: 'Bearer test-key', contentType: 'application/json', userAgent: 'kling-element-tracker' },
    ]);
  });

  test('when calls follow one another, then they reuse one kept-alive connection', async () => {
    behaviour = (_req, res) => res.end(envelope(TASK));
    const kling = client();
    const before = accepted.length;
    for (let i = 0; i < 3; i++) await kling.getElementTask(`task-${i}`);
    expect(requests.map((r) => r.url)).toEqual([0, 1, 2].map((i) => `${ELEMENTS_PATH}/task-${i}`));
    expect(accepted.length - before).toBe(1);
  });

  test('when a kept connection is closed by the server as a GET is sent on it, then the GET is sent once more on a new connection and succeeds', async () => {
    behaviour = dropSecondRequestOfEachConnection;
    const kling = client();
    const before = accepted.length;
    await kling.getElementTask('first');
    const task = await kling.getElementTask('second');
    expect(task).toMatchObject({ task_id: TASK.task_id });
    // first, second (dropped unanswered on the kept connection), second again on a new connection.
    expect(requests.map((r) => r.url)).toEqual(['first', 'second', 'second'].map((id) => `${ELEMENTS_PATH}/${id}`));
    expect(accepted.length - before).toBe(2);
  });

  test('when a kept connection is closed by the server as a create is sent on it, then the create is not sent again: the failure says it may have reached Kling', async () => {
    behaviour = dropSecondRequestOfEachConnection;
    const kling = client();
    await kling.getElementTask('first');
    const failure = await failureOf(kling.createElement({ element_name: 'once' }));
    expect(failure).toMatchObject({ kind: 'retryable', code: 'NETWORK_ERROR', details: { mayHaveReachedUpstream: true } });
    expect(requests.map((r) => r.method)).toEqual(['GET', 'POST']);
  });

  test('when Kling answers 429 with Retry-After, then the failure is a rate limit carrying the wait', async () => {
    behaviour = (_req, res) => {
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '3' });
      res.end(JSON.stringify({ code: 1302, message: 'rate limited', request_id: 'r' }));
    };
    const failure = await failureOf(client().createElement({}));
    expect(failure).toMatchObject({ kind: 'retryable', code: '1302', details: { httpStatus: 429, retryAfterMs: 3_000 } });
  });

  test('when the connection drops before the answer is complete, then the failure is retryable and the create may have reached Kling', async () => {
    behaviour = (req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '500' });
      res.write('{"code":0,');
      setTimeout(() => req.socket.destroy(), 20);
    };
    const failure = await failureOf(client().createElement({}));
    expect(failure).toMatchObject({ kind: 'retryable', code: 'NETWORK_ERROR', details: { mayHaveReachedUpstream: true } });
  });

  test('when Kling does not answer within the timeout, then the failure is TIMEOUT and the create may have reached Kling', async () => {
    behaviour = () => undefined;
    const started = Date.now();
    const failure = await failureOf(client(300).createElement({}));
    expect(failure).toMatchObject({ kind: 'retryable', code: 'TIMEOUT', details: { mayHaveReachedUpstream: true } });
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
  });

  test('when nothing listens at the address, then the failure is retryable and the create certainly did not reach Kling', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const kling = createKlingClient({ baseUrl: `http://127.0.0.1:${port}`, auth: { kind: 'bearer', apiKey: 'k' }, timeoutMs: 2_000 });
    const failure = await failureOf(kling.createElement({}));
    expect(failure).toMatchObject({ kind: 'retryable', code: 'NETWORK_ERROR', details: { mayHaveReachedUpstream: false } });
    expect(failure.message).toMatch(/ECONNREFUSED/);
  });
});

describe('kept-alive connections', () => {
  test('when a connection has been idle longer than the idle limit, then it is closed and the next call opens a new one; a slower answer is not cut', async () => {
    behaviour = (req, res) => {
      setTimeout(() => res.end('done'), req.url === '/slow' ? 400 : 0);
    };
    const exchange = createHttpExchange({ maxSockets: 4, idleConnectionMs: 150 });
    const before = accepted.length;
    // Slower than the idle limit: the limit applies to idle connections only.
    const slow = await exchange(`${baseUrl}/slow`, { method: 'GET', headers: {}, timeoutMs: 2_000 });
    expect({ status: slow.status, text: slow.text }).toEqual({ status: 200, text: 'done' });
    expect(accepted.length - before).toBe(1);
    const first = accepted[before]!;
    // Idle past the limit: we close it (the server sees it go), before a server could close it under a request.
    const deadline = Date.now() + 2_000;
    while (!first.destroyed && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(first.destroyed).toBe(true);
    const next = await exchange(`${baseUrl}/fast`, { method: 'GET', headers: {}, timeoutMs: 2_000 });
    expect(next.text).toBe('done');
    expect(accepted.length - before).toBe(2);
  });
});
