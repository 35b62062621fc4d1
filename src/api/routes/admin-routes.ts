import { createHmac, timingSafeEqual } from 'node:crypto';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import express, { type RequestHandler, type Router } from 'express';
import type { Queue } from 'bullmq';
import { AppError } from '../../errors';

export const ADMIN_QUEUES_PATH = '/admin/queues';
export const ADMIN_COOKIE = 'ket_admin';
/** How long a browser stays logged in after opening `/admin/queues?token=…`. */
const ADMIN_SESSION_SECONDS = 12 * 60 * 60;

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/** Constant-time, so answer timing reveals nothing about the token. */
function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [key, ...value] = part.trim().split('=');
    if (key === name) return decodeURIComponent(value.join('='));
  }
  return undefined;
}

/** The URL without its `token` parameter, so the secret leaves the address bar and the history. */
function withoutToken(originalUrl: string): string {
  const url = new URL(originalUrl, 'http://placeholder');
  url.searchParams.delete('token');
  return `${url.pathname}${url.search}`;
}

/**
 * ADMIN_TOKEN, three ways: `Authorization: Bearer <token>` (scripts, curl); `?token=<token>` once in a
 * browser, which sets an HttpOnly, SameSite=Strict cookie and redirects to the same page without the
 * token; then that cookie. The cookie holds an HMAC of the token, not the token itself.
 */
export function requireAdminToken(adminToken: string): RequestHandler {
  const session = createHmac('sha256', adminToken).update('admin-session').digest('base64url');
  return (req, res, next) => {
    const bearer = BEARER.exec(req.get('authorization') ?? '')?.[1];
    if (bearer !== undefined && sameSecret(bearer, adminToken)) return next();
    const cookie = cookieValue(req.get('cookie'), ADMIN_COOKIE);
    if (cookie !== undefined && sameSecret(cookie, session)) return next();
    const queryToken = req.query.token;
    if (req.method === 'GET' && typeof queryToken === 'string' && sameSecret(queryToken, adminToken)) {
      res.cookie(ADMIN_COOKIE, session, {
        httpOnly: true,
        sameSite: 'strict',
        secure: req.secure,
        path: ADMIN_QUEUES_PATH,
        maxAge: ADMIN_SESSION_SECONDS * 1000,
      });
      return res.redirect(303, withoutToken(req.originalUrl));
    }
    res.set('WWW-Authenticate', 'Bearer realm="admin"');
    throw new AppError('UNAUTHORIZED', `Send "Authorization: Bearer <ADMIN_TOKEN>", or open ${ADMIN_QUEUES_PATH}?token=<ADMIN_TOKEN> once in a browser`);
  };
}

/** Bull Board (the queue UI) for every queue, behind ADMIN_TOKEN. Mounted only when ADMIN_TOKEN is set. */
export function adminQueueRoutes(options: { adminToken: string; queues: Queue[] }): Router {
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath(ADMIN_QUEUES_PATH);
  createBullBoard({
    queues: options.queues.map((queue) => new BullMQAdapter(queue)),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'kling-element-tracker' } },
  });
  const board = serverAdapter.getRouter() as express.Express;
  board.disable('x-powered-by');
  const router = express.Router();
  router.use(requireAdminToken(options.adminToken), board);
  return router;
}
