import type { NextFunction, Request, RequestHandler, Response } from 'express';

/**
 * Several middlewares mounted as one: `app.use(path, chain(a, b, c))` behaves as `app.use(path, a, b, c)`
 * (an error thrown, rejected or passed to `next` skips the rest and goes to the error handlers), but
 * Express matches the mount path once instead of once per middleware: each match allocates and rewrites
 * `req.url` there and back, on every request of the busiest routes.
 */
export function chain(...handlers: RequestHandler[]): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    let index = 0;
    const step = (error?: unknown): void => {
      if (error || index === handlers.length) {
        next(error);
        return;
      }
      const handler = handlers[index++]!;
      try {
        const result: unknown = handler(req, res, step);
        // As Express 5 does for a handler that returns a promise.
        if (result instanceof Promise) result.catch((rejection: unknown) => next(rejection ?? new Error('Rejected promise')));
      } catch (thrown) {
        next(thrown);
      }
    };
    step();
  };
}
