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
  const queuedGates: (() => void)[] = [];
  const started: string[] = [];
  /** Creates whose handler has sent its answer (server side). */
  const answered: string[] = [];

  beforeAll(async () => {
    const app = express();
    app.use(createAdmission(1, { targetMs: 20 }).admit);
    app.post('/', async (req, res) => {
      const name = String(req.query.name);
      started.push(name);
      // Stored when the test opens this create's gate.
      await new Promise<void>((open) => gates.push(open));
      // `?queuing`: its job is queued when the test opens its queued gate (the answer does not wait for it).
      createStored(res, req.query.queuing !== undefined ? new Promise<void>((open) => queuedGates.push(open)) : undefined);
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

  test('when a create is answered but its job is still being queued, and no callbacks come in, then the next create goes at once', async () => {
    started.length = 0;
    const first = post('first', '&queuing');
    await waitFor(() => started.length === 1);
    gates.shift()!();
    await expect(first).resolves.toEqual({ created: 'first' });

    const next = post('next');
    await waitFor(() => started.length === 2);

    queuedGates.shift()!();
    gates.shift()!();
    await expect(next).resolves.toEqual({ created: 'next' });
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
 * Creates give way to Kling's callbacks: while they come in, creates get half the limit, less while
 * callbacks take longer than their target, more while they keep to it (creates-beside-callbacks.ts has
 * the rule's own tests). A real app on loopback again; the test holds the callbacks and the creates'
 * stores open with gates. The target (300 ms) and the quiet time (400 ms) are far from how long an
 * unheld request takes, so which create starts is decided by the gates, not by the machine's speed.
 */
describe('create admission while Kling\'s callbacks come in', () => {
  const TARGET_MS = 300;
  const QUIET_MS = 400;
  let server: Server;
  let baseUrl: string;
  const storeGates: (() => void)[] = [];
  const queuedGates: (() => void)[] = [];
  const callbackGates: (() => void)[] = [];
  const started: string[] = [];

  beforeAll(async () => {
    const app = express();
    const creates = createAdmission(2, { targetMs: TARGET_MS, intervalMs: 100, quietAfterMs: QUIET_MS });
    app.use('/tasks', creates.admit);
    app.post('/tasks', async (req, res) => {
      started.push(String(req.query.name));
      await new Promise<void>((open) => storeGates.push(open));
      // `?queuing`: its job is queued when the test opens its queued gate (the answer does not wait for it).
      createStored(res, req.query.queuing !== undefined ? new Promise<void>((open) => queuedGates.push(open)) : undefined);
      res.json({ created: req.query.name });
    });
    app.post('/callback', creates.giveWay, async (req, res) => {
      if (req.query.held !== undefined) await new Promise<void>((open) => callbackGates.push(open));
      res.json({ received: true });
    });
    ({ server, baseUrl } = await listenOnLoopback(app));
  });
  afterAll(() => closeServer(server));
  beforeEach(async () => {
    started.length = 0;
    // Each test starts from a quiet API: no callback seen for the quiet time.
    await sleep(QUIET_MS + 100);
  });

  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  const post = (name: string, query = '') => fetch(`${baseUrl}/tasks?name=${name}${query}`, { method: 'POST' }).then((response) => response.json());
  const callback = (query = '') => fetch(`${baseUrl}/callback${query}`, { method: 'POST' }).then((response) => response.json());
  /** Opens every store gate, including those of creates that start meanwhile, until `creates` are answered. */
  const openStores = async (...creates: Promise<unknown>[]) => {
    let answered = false;
    const all = Promise.all(creates).finally(() => (answered = true));
    while (!answered) {
      while (storeGates.length > 0) storeGates.shift()!();
      await sleep(10);
    }
    await all;
  };

  test('when a callback is in flight, then creates go one at a time (half the limit of 2), and two at once when callbacks have been quiet', async () => {
    const held = callback('?held');
    await waitFor(() => callbackGates.length === 1);

    const first = post('first');
    const second = post('second');
    await waitFor(() => started.length === 1);
    await sleep(100);
    expect(started).toEqual(['first']);

    callbackGates.shift()!();
    await expect(held).resolves.toEqual({ received: true });
    // Quiet for long enough: the full limit applies again, and the waiting create goes once a permit
    // is given back.
    await sleep(QUIET_MS + 100);
    await openStores(first);
    await waitFor(() => started.length === 2);
    await openStores(second);

    started.length = 0;
    const both = [post('a'), post('b')];
    await waitFor(() => started.length === 2);
    await openStores(...both);
  });

  test('when callbacks come in, then a create answered while its job is still being queued keeps its place until the job is queued', async () => {
    const held = callback('?held');
    await waitFor(() => callbackGates.length === 1);
    // Half the limit of 2: one create at a time.
    const first = post('first', '&queuing');
    await waitFor(() => started.length === 1);
    storeGates.shift()!();
    await expect(first).resolves.toEqual({ created: 'first' });

    const next = post('next');
    await sleep(100);
    expect(started).toEqual(['first']);
    queuedGates.shift()!();
    await waitFor(() => started.length === 2);

    callbackGates.shift()!();
    await expect(held).resolves.toEqual({ received: true });
    await openStores(next);
  });

  /**
   * An app of its own with this admission: each create records when it started and, when `gated`, waits
   * for its store gate; a callback takes `?held` ms.
   */
  async function ownApp(limit: number, options: Parameters<typeof createAdmission>[1], gated: boolean) {
    const app = express();
    const creates = createAdmission(limit, options);
    const startedAt = new Map<string, number>();
    app.use('/tasks', creates.admit);
    app.post('/tasks', async (req, res) => {
      started.push(String(req.query.name));
      startedAt.set(String(req.query.name), performance.now());
      if (gated) await new Promise<void>((open) => storeGates.push(open));
      createStored(res);
      res.json({ created: req.query.name });
    });
    app.post('/callback', creates.giveWay, async (req, res) => {
      if (req.query.held !== undefined) await sleep(Number(req.query.held));
      res.json({ received: true });
    });
    const { server, baseUrl: ownUrl } = await listenOnLoopback(app);
    const callbackTo = (query = '') => fetch(`${ownUrl}/callback${query}`, { method: 'POST' });
    return {
      server,
      startedAt,
      postTo: (name: string, signal?: AbortSignal) => fetch(`${ownUrl}/tasks?name=${name}`, { method: 'POST', signal }).then((response) => response.json()),
      callbackTo,
      /** A fast callback, then one held past the target: slow against the fastest. */
      async slowCallback() {
        await callbackTo();
        await callbackTo(`?held=${TARGET_MS + 200}`);
      },
    };
  }

  test('when a callback takes longer than the target beyond the fastest one, then creates give way further: one at a time where half the limit of 4 would let two go', async () => {
    // Limit 4: half is 2 while callbacks come in; a slow callback (against a fast one) halves it to 1.
    const own = await ownApp(4, { targetMs: TARGET_MS, intervalMs: 100, quietAfterMs: 10_000 }, true);
    try {
      await own.slowCallback();
      const creates3 = [own.postTo('x'), own.postTo('y'), own.postTo('z')];
      await waitFor(() => started.length === 1);
      await sleep(100);
      expect(started).toEqual(['x']);

      // Callbacks that keep to the target raise the share again, one per interval: 2.
      await sleep(150);
      await own.callbackTo();
      await waitFor(() => started.length === 2);
      await sleep(100);
      expect(started).toEqual(['x', 'y']);
      await openStores(...creates3);
    } finally {
      await closeServer(own.server);
    }
  });

  test('when callbacks are still slow at a share of one, then the next create waits out the pause after the last one started, and a client that left while waiting gives its turn back', async () => {
    // Limit 2: half is 1 while callbacks come in, so a slow callback starts the pause (1 s) at once.
    const PAUSE_MS = 1_000;
    const own = await ownApp(2, { targetMs: TARGET_MS, intervalMs: 100, quietAfterMs: 10_000, pauseStartMs: PAUSE_MS, pauseMaxMs: PAUSE_MS }, false);
    try {
      await own.slowCallback();

      await expect(own.postTo('a')).resolves.toEqual({ created: 'a' });
      const left = new AbortController();
      const gone = own.postTo('gone', left.signal).catch((error: unknown) => error);
      await sleep(PAUSE_MS / 5);
      left.abort();
      await gone;
      const b = own.postTo('b');
      await sleep(PAUSE_MS / 5);
      expect(started).toEqual(['a']);

      await expect(b).resolves.toEqual({ created: 'b' });
      expect(started).toEqual(['a', 'b']);
      const sinceA = own.startedAt.get('b')! - own.startedAt.get('a')!;
      expect(sinceA).toBeGreaterThanOrEqual(PAUSE_MS - 5);
      // Had the gone create kept its turn, b would have waited a second pause after it.
      expect(sinceA).toBeLessThan(2 * PAUSE_MS - 100);
    } finally {
      await closeServer(own.server);
    }
  });
});
