import type { NextFunction, RequestHandler, Response } from 'express';
import { createSemaphore } from '../semaphore';
import { createsBesideCallbacks, type CreatesBesideCallbacksOptions } from './creates-beside-callbacks';

const RELEASE = 'releaseCreatePermit';
const STORED = 'createStored';
const HOLD_UNTIL_QUEUED = 'createPermitHeldUntilQueued';

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
 * cheaper batches. Below a share of one, creates also keep a pause between their starts (the permit is
 * held through it). The permit is given back once the task is stored (`createStored`; while callbacks come
 * in, once its job is queued too), so a create that then waits for its task (`Prefer: wait`) holds none;
 * a client that gave up while waiting is skipped.
 */
export function createAdmission(limit: number, besideCallbacks: Omit<CreatesBesideCallbacksOptions, 'max'>): CreateAdmission {
  const share = createsBesideCallbacks({ ...besideCallbacks, max: limit });
  const withPermit = createSemaphore(share.limit);
  /** When the last create started, or is due to start once its pause is over. */
  let lastStart = Number.NEGATIVE_INFINITY;

  /**
   * Starts the create once the pause since the previous one is over. A client that leaves meanwhile gives
   * its turn back, so the next create keeps its pause after the last create that did start.
   */
  const afterPause = (res: Response, next: NextFunction): void => {
    const at = performance.now();
    const previous = lastStart;
    const due = previous + share.pauseMs();
    if (due <= at) {
      lastStart = at;
      next();
      return;
    }
    share.createHeldBack();
    lastStart = due;
    let begun = false;
    const timer = setTimeout(() => {
      begun = true;
      next();
    }, due - at);
    res.once('close', () => {
      if (begun) return;
      clearTimeout(timer);
      if (lastStart === due) lastStart = previous;
    });
  };

  const admitCreate: RequestHandler = (req, res, next) => {
    if (withPermit.wouldWait()) share.createHeldBack();
    void withPermit(
      () =>
        new Promise<void>((release) => {
          if (req.socket.destroyed) {
            release();
            return;
          }
          res.locals[RELEASE] = release;
          res.locals[HOLD_UNTIL_QUEUED] = share.callbacksComing();
          // 'close' follows 'finish', and also comes when the client goes away or the create fails; once
          // the create is stored, createStored gives the permit back.
          res.once('close', () => {
            if (!res.locals[STORED]) release();
          });
          afterPause(res, next);
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

/**
 * The create of this request is stored (or refused): its permit goes to the next create waiting. The
 * answer does not wait for the task's job to be queued (create-task.ts). Nor does the permit, unless
 * Kling's callbacks were coming in when the create was admitted: then it is held until `queued`
 * settles, so that the share left to creates beside callbacks bounds all of their work. Measured with
 * `npm run bench`: held always, closed-loop creates fell below the old code's (ratio 0.64–0.66 vs
 * 0.73–0.75); released always, callback → visible p50 rose to 36–38 ms from 25–27 in bursts.
 */
export function createStored(res: Response, queued: Promise<void> = Promise.resolve()): void {
  const release = res.locals[RELEASE] as (() => void) | undefined;
  if (!release || res.locals[STORED]) return;
  res.locals[STORED] = true;
  if (res.locals[HOLD_UNTIL_QUEUED]) void queued.finally(release);
  else release();
}
