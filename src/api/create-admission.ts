import type { RequestHandler, Response } from 'express';
import { createSemaphore } from '../semaphore';

const RELEASE = 'releaseCreatePermit';

/**
 * At most `limit` creates are validated and stored at once; more wait their turn, in arrival order, once
 * their bodies are read (so a client sending its body slowly holds no place). When clients post faster than the API can store, the API otherwise holds
 * every arriving create at once and everything else waits behind them: Kling's callbacks and clients'
 * GETs then see the new status only after hundreds of milliseconds (`npm run bench`, burst phase). With
 * the limit they queue behind a few creates at most, and creates still share their batches
 * (batcher.ts). The permit is given back once the task is stored (`createStored`), so a create that
 * then waits for its task (`Prefer: wait`) holds none; a client that gave up while waiting is skipped.
 */
export function admitCreates(limit: number): RequestHandler {
  const withPermit = createSemaphore(limit);
  return (req, res, next) => {
    if (req.method !== 'POST' || req.path !== '/') {
      next();
      return;
    }
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
}

/** The create of this request is stored (or refused): its permit goes to the next create waiting. */
export function createStored(res: Response): void {
  (res.locals[RELEASE] as (() => void) | undefined)?.();
}
