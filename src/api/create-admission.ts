import type { RequestHandler, Response } from 'express';
import { createSemaphore } from '../semaphore';
import { createsBesideCallbacks, type CreatesBesideCallbacksOptions } from './creates-beside-callbacks';

const RELEASE = 'releaseCreatePermit';

export interface CreateAdmission {
  /** Mounted before /v1/tasks: holds a create (`POST /`) until it may be validated and stored; other requests pass. */
  admit: RequestHandler;
  /** The same for every request it sees: mounted on another surface's create route (Kling-compatible). */
  admitCreate: RequestHandler;
  /** Mounted before Kling's callback route: while callbacks come in, creates give way as far as they need. */
  giveWay: RequestHandler;
}

/**
 * At most `limit` creates are validated and stored at once; more wait their turn, in arrival order, once
 * their bodies are read (so a client sending its body slowly holds no place). When clients post faster
 * than the API can store, the API otherwise holds every arriving create at once and everything else
 * waits behind them: Kling's callbacks and clients' GETs then see the new status only after hundreds of
 * milliseconds (`npm run bench`, burst phase). With the limit they queue behind a few creates at most,
 * and creates still share their batches (batcher.ts). While Kling's callbacks are coming in, creates get
 * only the share that keeps callbacks within their target time (creates-beside-callbacks.ts): callbacks
 * are what make a task's news visible, and a stream of creates alone still gets the full limit's larger,
 * cheaper batches. The permit is given back once the task is stored (`createStored`), so a create that
 * then waits for its task (`Prefer: wait`) holds none; a client that gave up while waiting is skipped.
 */
export function createAdmission(limit: number, besideCallbacks: Omit<CreatesBesideCallbacksOptions, 'max'>): CreateAdmission {
  const share = createsBesideCallbacks({ ...besideCallbacks, max: limit });
  const withPermit = createSemaphore(share.limit);

  const admitCreate: RequestHandler = (req, res, next) => {
    void withPermit(
      () =>
        new Promise<void>((release) => {
          if (req.socket.destroyed) {
            release();
            return;
          }
          res.locals[RELEASE] = release;
          // 'close' follows 'finish', and also comes when the client goes away or the create fails.
          res.once('close', () => release());
          next();
        }),
    );
  };

  const admit: RequestHandler = (req, res, next) => {
    if (req.method === 'POST' && req.path === '/') admitCreate(req, res, next);
    else next();
  };

  const giveWay: RequestHandler = (_req, res, next) => {
    share.callbackStarted();
    const started = performance.now();
    let done = false;
    const finished = (): void => {
      if (done) return;
      done = true;
      // A larger share: creates that waited for the smaller one may go.
      if (share.callbackFinished(performance.now() - started)) withPermit.wake();
    };
    res.once('finish', finished);
    res.once('close', finished);
    next();
  };

  return { admit, admitCreate, giveWay };
}

/** The create of this request is stored (or refused): its permit goes to the next create waiting. */
export function createStored(res: Response): void {
  (res.locals[RELEASE] as (() => void) | undefined)?.();
}
