import { connect, type Socket } from 'node:net';
import { startTestService, type TestService } from '../helpers/test-service';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A raw keep-alive connection to the API, so that only the server decides when it closes (Node's HTTP
 * agent would close it itself on the server's Keep-Alive hint).
 */
async function openConnection(baseUrl: string) {
  const { port } = new URL(baseUrl);
  const socket: Socket = connect(Number(port), '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let received = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (received += chunk));
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
  return {
    socket,
    closed,
    /** One GET /healthz on this connection; resolves with the status line once the whole answer is in. */
    async get(): Promise<string> {
      received = '';
      socket.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: keep-alive\r\n\r\n`);
      for (let waited = 0; waited < 5_000; waited += 10) {
        const end = received.indexOf('\r\n\r\n');
        const length = Number(/content-length: (\d+)/i.exec(received)?.[1] ?? Number.NaN);
        if (end >= 0 && received.length >= end + 4 + length) return received.slice(0, received.indexOf('\r\n'));
        await sleep(10);
      }
      throw new Error(`no complete answer on the connection: ${JSON.stringify(received)}`);
    },
  };
}

/** A request, `idleMs` of quiet, then a second request answered on the same, still open connection. */
async function expectConnectionReusedAfter(baseUrl: string, idleMs: number): Promise<void> {
  const connection = await openConnection(baseUrl);
  try {
    expect(await connection.get()).toBe('HTTP/1.1 200 OK');
    await sleep(idleMs);
    expect(connection.socket.destroyed).toBe(false);
    expect(await connection.get()).toBe('HTTP/1.1 200 OK');
  } finally {
    connection.socket.destroy();
  }
}

/*
 * A busy API accepts new connections slowly (one per turn of its event loop), so it keeps idle client
 * connections open for HTTP_KEEP_ALIVE_TIMEOUT_MS (65 s by default) instead of Node's 5 s.
 */
describe('idle client connections (HTTP_KEEP_ALIVE_TIMEOUT_MS)', () => {
  let service: TestService;

  beforeAll(async () => {
    service = await startTestService({ workers: false, env: { HTTP_KEEP_ALIVE_TIMEOUT_MS: '1500' } });
  });
  afterAll(() => service.stop());

  test('when a client comes back within the keep-alive time, then its connection still answers', async () => {
    await expectConnectionReusedAfter(service.baseUrl, 700);
  });

  test('when a connection stays idle past the keep-alive time, then the API closes it', async () => {
    const connection = await openConnection(service.baseUrl);
    expect(await connection.get()).toBe('HTTP/1.1 200 OK');
    const idleSince = Date.now();

    const closedAt = await connection.closed;

    expect(closedAt - idleSince).toBeGreaterThanOrEqual(1_400);
    expect(closedAt - idleSince).toBeLessThan(5_000);
  });

  test('when the setting is absent, then an idle connection outlives Node\'s own 5 s', async () => {
    const defaults = await startTestService({ workers: false });
    try {
      await expectConnectionReusedAfter(defaults.baseUrl, 5_500);
    } finally {
      await defaults.stop();
    }
  }, 15_000);
});
