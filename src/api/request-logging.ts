import { randomUUID } from 'node:crypto';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Request, RequestHandler } from 'express';
import { pinoHttp } from 'pino-http';
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

const withoutSecrets = (headers: OutgoingHttpHeaders | IncomingMessage['headers']) =>
  Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, SECRET_HEADERS.has(name.toLowerCase()) ? '[redacted]' : value]));

/**
 * One log line per request (pino-http): method, path, status, duration, request id (taken from
 * `X-Request-Id` or generated, and echoed in the answer) and the task id when there is one. `req.log`
 * carries the request id for the handlers' own lines. Credentials in headers and query strings are
 * replaced; bodies are never logged.
 */
export function requestLogging(logger: Logger): RequestHandler {
  return pinoHttp({
    logger,
    genReqId: requestId,
    quietReqLogger: true,
    customAttributeKeys: { reqId: 'requestId' },
    customProps: (req, res) => {
      const taskId = taskIdOf(req, res);
      return taskId ? { taskId } : {};
    },
    customLogLevel: (req, res, error) => {
      if (error || res.statusCode >= 500) return 'error';
      return isQuiet(pathOf(req)) ? 'debug' : 'info';
    },
    serializers: {
      req: (req: { method?: string; url?: string; headers: IncomingMessage['headers']; remoteAddress?: string }) => ({
        method: req.method,
        url: redactUrl(req.url ?? ''),
        headers: withoutSecrets(req.headers),
        remoteAddress: req.remoteAddress,
      }),
      res: (res: { statusCode: number; headers?: OutgoingHttpHeaders }) => ({
        statusCode: res.statusCode,
        headers: Object.fromEntries(Object.entries(res.headers ?? {}).filter(([name]) => name !== 'set-cookie')),
      }),
    },
  }) as RequestHandler;
}
