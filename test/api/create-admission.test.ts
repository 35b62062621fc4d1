import type { Server } from 'node:http';
import express from 'express';
import { admitCreates, createStored } from '../../src/api/create-admission';

/**
 * The admission step on its own, in a real Express app on loopback: a create route whose "storing" is a
 * gate the test opens, so which request is held and which goes through is decided by the test, not by
 * timing. (test/api/concurrent-creates.test.ts runs it inside the whole service.)
 */
describe('admitCreates (API_MAX_CONCURRENT_CREATES)', () => {
  let server: Server;
  let baseUrl: string;
  const gates: (() => void)[] = [];
  const started: string[] = [];
  /** Creates whose handler has sent its answer (server side). */
  const answered: string[] = [];

  beforeAll(async () => {
    const app = express();
    app.use(admitCreates(1));
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
    server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const waitFor = async (condition: () => boolean): Promise<void> => {
    for (let i = 0; i < 200 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(condition()).toBe(true);
  };
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
