import express, { type ErrorRequestHandler, type RequestHandler } from 'express';
import request from 'supertest';
import { chain } from '../../src/api/chain';

/** An app with `chain(...handlers)` on /x; the answer shows which steps ran and which error arrived. */
function appWith(...handlers: RequestHandler[]) {
  const app = express();
  app.use('/x', chain(...handlers), (_req, res) => {
    res.json({ steps: res.locals.steps ?? [], path: _req.path });
  });
  const onError: ErrorRequestHandler = (error: Error, _req, res, _next) => {
    res.status(500).json({ steps: res.locals.steps ?? [], error: error.message });
  };
  app.use(onError);
  return app;
}

const step =
  (name: string): RequestHandler =>
  (_req, res, next) => {
    res.locals.steps = [...((res.locals.steps as string[] | undefined) ?? []), name];
    next();
  };

describe('chain', () => {
  test('when every middleware calls next, then they run in order, sync and async, and the route after them runs with the mount path removed', async () => {
    const asyncStep: RequestHandler = async (req, res, next) => {
      await new Promise((resolve) => setImmediate(resolve));
      step('b')(req, res, next);
    };
    const response = await request(appWith(step('a'), asyncStep, step('c'))).get('/x/y');

    expect(response.status).toBe(200);
    expect(response.body).toEqual({ steps: ['a', 'b', 'c'], path: '/y' });
  });

  test.each([
    ['thrown', (): RequestHandler => () => {
      throw new Error('boom');
    }],
    ['rejected', (): RequestHandler => async () => {
      await Promise.resolve();
      throw new Error('boom');
    }],
    ['passed to next', (): RequestHandler => (_req, _res, next) => next(new Error('boom'))],
  ])('when a middleware fails (%s), then the rest are skipped and the error handler answers', async (_how, failing) => {
    const response = await request(appWith(step('a'), failing(), step('c'))).get('/x');

    expect(response.status).toBe(500);
    expect(response.body).toEqual({ steps: ['a'], error: 'boom' });
  });

  test('when a middleware answers without calling next, then nothing after it runs', async () => {
    const ran: string[] = [];
    const record =
      (name: string): RequestHandler =>
      (_req, _res, next) => {
        ran.push(name);
        next();
      };
    const answer: RequestHandler = (_req, res) => {
      ran.push('answer');
      res.status(204).end();
    };
    const response = await request(appWith(record('a'), answer, record('c'))).get('/x');

    expect(response.status).toBe(204);
    await new Promise((resolve) => setImmediate(resolve));
    expect(ran).toEqual(['a', 'answer']);
  });
});
