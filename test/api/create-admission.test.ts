import type { Server } from 'node:http';
import express from 'express';
import { createAdmission, createStored } from '../../src/api/create-admission';

/** Serves `app` on a free loopback port. */
async function listenOnLoopback(app: express.Express): Promise<{ server: Server; baseUrl: string }> {
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return { server, baseUrl: `http://127.0.0.1:${(server.address() as { port: number }).port}` };
}

async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
}

/** Polls `condition` (every 10 ms, up to 2 s) and expects it to hold. */
async function waitFor(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(condition()).toBe(true);
}

/**
 * The admission step on its own, in a real Express app on loopback: a create route whose "storing" is a
 * gate the test opens, so which request is held and which goes through is decided by the test, not by
 * timing. (test/api/concurrent-creates.test.ts runs it inside the whole service.)
 */
describe('create admission (API_MAX_CONCURRENT_CREATES)', () => {
  let server: Server;
  let baseUrl: string;
  const gates: (() => void)[] = [];
  const started: string[] = [];
  /** Creates whose handler has sent its answer (server side). */
  const answered: string[] = [];

  beforeAll(async () => {
    const app = express();
    app.use(createAdmission(1).admit);
    app.post('/', async (req, res) => {
      const name = String(req.query.name);
      started.push(name);
      // Stored when the test opens this create's gate.
      await new Promise<void>((open) => gates.push(open));
      createStored(res);
      // `?wait` keeps answering after the store, as a create with `Prefer: wait` does.
      if (req.query.wait !== undefined) await new Promise((resolve) => setTimeout(resolve, 300));
      answered.push(name);
      res.json({ created: name });
    });
    app.get('/tasks', (_req, res) => {
      res.json({ read: true });
    });
    ({ server, baseUrl } = await listenOnLoopback(app));
  });
  afterAll(() => closeServer(server));

  const post = (name: string, query = '') => fetch(`${baseUrl}/?name=${name}${query}`, { method: 'POST' }).then((response) => response.json());

  test('when the limit is reached, then the next create waits its turn, reads are not held, and each create is answered', async () => {
    started.length = 0;
    const first = post('first');
    await waitFor(() => started.length === 1);
    const second = post('second');

    const read = await fetch(`${baseUrl}/tasks`).then((response) => response.json());
    await new Promise((resolve) => setTimeout(resolve, 100));

    expect(read).toEqual({ read: true });
    expect(started).toEqual(['first']);
    gates.shift()!();
    await expect(first).resolves.toEqual({ created: 'first' });
    await waitFor(() => started.length === 2);
    gates.shift()!();
    await expect(second).resolves.toEqual({ created: 'second' });
    expect(started).toEqual(['first', 'second']);
  });

  test('when a create is stored but still answering (Prefer: wait), then the next create does not wait for its answer', async () => {
    started.length = 0;
    answered.length = 0;
    const waiting = post('waiting', '&wait');
    await waitFor(() => started.length === 1);
    gates.shift()!();

    const next = post('next');
    await waitFor(() => started.length === 2);

    expect(answered).toEqual([]);
    gates.shift()!();

    await expect(next).resolves.toEqual({ created: 'next' });
    await expect(waiting).resolves.toEqual({ created: 'waiting' });
  });
});

/**
 * Creates give way to Kling's callbacks: while one is being handled, half the limit applies. A real app
 * on loopback again; the test holds the callback and the creates' stores open with gates.
 */
describe('create admission while Kling\'s callbacks are in flight', () => {
  let server: Server;
  let baseUrl: string;
  const storeGates: (() => void)[] = [];
  let callbackGate: (() => void) | undefined;
  const started: string[] = [];

  beforeAll(async () => {
    const app = express();
    const creates = createAdmission(2);
    app.use('/tasks', creates.admit);
    app.post('/tasks', async (req, res) => {
      started.push(String(req.query.name));
      await new Promise<void>((open) => storeGates.push(open));
      createStored(res);
      res.json({ created: req.query.name });
    });
    app.post('/callback', creates.giveWay, async (_req, res) => {
      await new Promise<void>((open) => (callbackGate = open));
      res.json({ received: true });
    });
    ({ server, baseUrl } = await listenOnLoopback(app));
  });
  afterAll(() => closeServer(server));

  const settle = () => new Promise((resolve) => setTimeout(resolve, 100));
  const post = (name: string) => fetch(`${baseUrl}/tasks?name=${name}`, { method: 'POST' }).then((response) => response.json());

  test('when a callback is in flight, then creates go one at a time (half the limit of 2), and two at once again when it is answered', async () => {
    const callback = fetch(`${baseUrl}/callback`, { method: 'POST' }).then((response) => response.json());
    await waitFor(() => callbackGate !== undefined);

    const first = post('first');
    const second = post('second');
    await waitFor(() => started.length === 1);
    await settle();
    expect(started).toEqual(['first']);

    callbackGate!();
    await expect(callback).resolves.toEqual({ received: true });
    await waitFor(() => started.length === 2);
    expect(started).toEqual(['first', 'second']);

    storeGates.shift()!();
    storeGates.shift()!();
    await expect(first).resolves.toEqual({ created: 'first' });
    await expect(second).resolves.toEqual({ created: 'second' });
  });

  test('when no callback is in flight, then the full limit of 2 applies', async () => {
    started.length = 0;
    const first = post('a');
    const second = post('b');
    await waitFor(() => started.length === 2);

    storeGates.shift()!();
    storeGates.shift()!();
    await expect(Promise.all([first, second])).resolves.toEqual([{ created: 'a' }, { created: 'b' }]);
  });
});
