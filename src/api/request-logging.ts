import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Express, Request, RequestHandler } from 'express';
import { redactUrl, type Logger } from '../logger';

export const REQUEST_ID_HEADER = 'X-Request-Id';

/** A caller's request id is kept when it is a plain token, so it cannot forge log fields or headers. */
const ACCEPTABLE_REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

/** Our task ids are recognisable in any path (`/v1/tasks/tsk_…`, `/webhooks/kling/tsk_…`, `/kling/…/tsk_…`). */
const TASK_ID_IN_PATH = /\btsk_[0-9A-Z]{26}\b/;

/** Probes, scrapes, static assets and the queue dashboard's own polling would drown the log at info: debug. */
const QUIET_PATHS = new Set(['/healthz', '/readyz', '/metrics']);
const QUIET_PREFIXES = ['/docs/assets/', '/admin/queues/api/', '/admin/queues/static/'];
const isQuiet = (path: string): boolean => QUIET_PATHS.has(path) || QUIET_PREFIXES.some((prefix) => path.startsWith(prefix));

const SECRET_HEADERS = new Set(['authorization', 'cookie', 'x-api-key', 'webhook-signature']);

function requestId(req: IncomingMessage, res: ServerResponse): string {
  const given = req.headers['x-request-id'];
  const id = typeof given === 'string' && ACCEPTABLE_REQUEST_ID.test(given) ? given : randomUUID();
  res.setHeader(REQUEST_ID_HEADER, id);
  return id;
}

/** Routers rewrite req.url while routing; the path as the client sent it stays in originalUrl. */
const pathOf = (req: IncomingMessage): string => ((req as Request).originalUrl ?? req.url ?? '').split('?')[0] ?? '';

/** The task a request is about: from its path, or (for a create) the Location of the new task. */
function taskIdOf(req: IncomingMessage, res: ServerResponse): string | undefined {
  const fromPath = TASK_ID_IN_PATH.exec(pathOf(req))?.[0];
  if (fromPath) return fromPath;
  const location = res.getHeader('location');
  return typeof location === 'string' ? TASK_ID_IN_PATH.exec(location)?.[0] : undefined;
}

/** Request headers as logged: credentials replaced (node lower-cases header names). */
function withoutSecrets(headers: IncomingHttpHeaders): Record<string, unknown> {
  const logged: Record<string, unknown> = {};
  for (const name in headers) logged[name] = SECRET_HEADERS.has(name) ? '[redacted]' : headers[name];
  return logged;
}

/** Response headers as logged: all but cookies. */
function responseHeaders(res: ServerResponse): Record<string, unknown> {
  const logged: Record<string, unknown> = {};
  const headers = res.getHeaders();
  for (const name in headers) if (name !== 'set-cookie') logged[name] = headers[name];
  return logged;
}

declare module 'node:http' {
  interface IncomingMessage {
    /** This request's logger: its lines carry the request id. */
    log: Logger;
    /** The request id: the caller's X-Request-Id when acceptable, else a new UUID. */
    id: string;
  }
}

/** The request's own logger, made on first use (see useRequestLogging). */
const REQUEST_LOGGER = Symbol('requestLogger');

/**
 * Mounts request logging on `app`: one log line per request when its answer is sent (or the client goes
 * away): method, path, status, duration, request id (taken from `X-Request-Id` or generated, and echoed
 * in the answer) and the task id when there is one. `req.log` carries the request id for the handlers'
 * own lines; it is made only when a handler logs, since most requests log nothing but this line.
 * Credentials in headers and query strings are replaced; bodies are never logged.
 *
 * `req.log` is a getter on the app's request prototype (Express's `app.request`), defined once. Defined
 * on each request instead, with a closure over that request, it gave every request a hidden class of its
 * own, and requests with their answers outlived two young-generation collections: 3 MB copied into the
 * old generation per young collection at 1,800 requests/s (`--trace-gc-nvp`, bench/README.md, eighth
 * session), nothing without it.
 */
export function useRequestLogging(app: Express, logger: Logger): void {
  Object.defineProperty(app.request, 'log', {
    configurable: true,
    enumerable: false,
    get(this: IncomingMessage & { [REQUEST_LOGGER]?: Logger }): Logger {
      return (this[REQUEST_LOGGER] ??= logger.child({ requestId: this.id }));
    },
  });
  app.use(requestLogging(logger));
}

function requestLogging(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const startedAt = Date.now();
    const id = requestId(req, res);
    req.id = id;
    let logged = false;
    const logLine = (): void => {
      if (logged) return;
      logged = true;
      const failed = res.statusCode >= 500;
      const level = failed ? 'error' : isQuiet(pathOf(req)) ? 'debug' : 'info';
      if (!logger.isLevelEnabled(level)) return;
      const taskId = taskIdOf(req, res);
      logger[level](
        {
          requestId: id,
          ...(taskId ? { taskId } : {}),
          req: { method: req.method, url: redactUrl(req.originalUrl ?? req.url ?? ''), headers: withoutSecrets(req.headers), remoteAddress: req.socket.remoteAddress },
          res: { statusCode: res.statusCode, headers: responseHeaders(res) },
          responseTime: Date.now() - startedAt,
        },
        failed ? 'request errored' : res.writableEnded ? 'request completed' : 'request aborted',
      );
    };
    res.once('finish', logLine);
    res.once('close', logLine);
    next();
  };
}
