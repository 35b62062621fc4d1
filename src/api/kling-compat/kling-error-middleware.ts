import { randomUUID } from 'node:crypto';
import type { ErrorRequestHandler, Request, RequestHandler, Response } from 'express';
import { AppError, type ErrorCode } from '../../errors';
import type { Logger } from '../../logger';
import { normalizeError, retryAfterSeconds } from '../error-middleware';
import type { KlingFailure } from './kling-envelope';

interface KlingError {
  httpStatus: number;
  code: number;
}

/**
 * Our error catalog in Kling's codes and HTTP statuses (NOTES-kling-api.md §4). A Record, so a code
 * added to the catalog cannot ship without deciding what a Kling client sees for it.
 */
const KLING_ERRORS: Record<ErrorCode, KlingError> = {
  VALIDATION_FAILED: { httpStatus: 400, code: 1201 },
  INVALID_JSON: { httpStatus: 400, code: 1200 },
  PAYLOAD_TOO_LARGE: { httpStatus: 400, code: 1200 },
  UNSUPPORTED_MEDIA_TYPE: { httpStatus: 400, code: 1200 },
  // Refined per request below: 1001 "Authorization is empty" or 1002 "Authorization is invalid".
  UNAUTHORIZED: { httpStatus: 401, code: 1002 },
  INVALID_CALLBACK_TOKEN: { httpStatus: 401, code: 1000 },
  FORBIDDEN: { httpStatus: 403, code: 1103 },
  // The documented code for "requested resource does not exist" (live Kling was once seen answering 1201 instead).
  TASK_NOT_FOUND: { httpStatus: 404, code: 1203 },
  // Kling's "the requested method is invalid".
  ROUTE_NOT_FOUND: { httpStatus: 404, code: 1202 },
  // As Kling answers a reused external_task_id: 400/1201 "already exists".
  EXTERNAL_TASK_ID_CONFLICT: { httpStatus: 400, code: 1201 },
  // Not reachable from Kling's routes (no cancel, retry, redeliver or Idempotency-Key there); a parameter error if ever.
  TASK_NOT_CANCELABLE: { httpStatus: 400, code: 1201 },
  TASK_NOT_RETRYABLE: { httpStatus: 400, code: 1201 },
  NOTHING_TO_REDELIVER: { httpStatus: 400, code: 1201 },
  IDEMPOTENCY_KEY_REUSED: { httpStatus: 400, code: 1201 },
  // Kling's own rate (1302) and concurrency (1303) refusals, for our per-tenant limits.
  TENANT_RATE_LIMITED: { httpStatus: 429, code: 1302 },
  TENANT_IN_FLIGHT_LIMIT: { httpStatus: 429, code: 1303 },
  SERVICE_UNAVAILABLE: { httpStatus: 503, code: 5001 },
  INTERNAL: { httpStatus: 500, code: 5000 },
};

/** One id per request, in the answer's `request_id` and in the log lines about it: the X-Request-Id. */
export const assignRequestId: RequestHandler = (req, res, next) => {
  res.locals.klingRequestId = typeof req.id === 'string' ? req.id : randomUUID();
  next();
};

export const klingRequestId = (res: Response): string => (res.locals.klingRequestId as string | undefined) ?? randomUUID();

function toKlingError(error: AppError, req: Request): KlingError & { message: string } {
  const mapped = KLING_ERRORS[error.code];
  if (error.code === 'UNAUTHORIZED') {
    const empty = !req.get('authorization')?.trim();
    return empty
      ? { httpStatus: 401, code: 1001, message: `Authorization is empty: ${error.message}` }
      : { ...mapped, message: `Authorization is invalid: ${error.message}` };
  }
  if (error.code === 'EXTERNAL_TASK_ID_CONFLICT') {
    const existing = typeof error.details.task_id === 'string' ? ` (task ${error.details.task_id})` : '';
    return { ...mapped, message: `external_task_id already exists${existing}` };
  }
  return { ...mapped, message: error.message };
}

/** The compatible surface's only error handler: the same AppErrors as /v1, in Kling's envelope. */
export function klingErrorHandler(logger: Logger): ErrorRequestHandler {
  return (error, req, res, _next) => {
    const appError = normalizeError(error);
    const requestId = klingRequestId(res);
    const logContext = { method: req.method, path: req.baseUrl + req.path, request_id: requestId };
    const log = req.log ?? logger;
    const retryAfter = retryAfterSeconds(appError);
    if (retryAfter !== undefined) res.set('Retry-After', String(retryAfter));
    if (appError.code === 'SERVICE_UNAVAILABLE') {
      log.warn({ ...logContext, reason: (error as Error)?.message }, 'dependency unavailable');
    } else if (appError.status >= 500) {
      log.error({ ...logContext, err: error }, 'request failed');
    }
    const { httpStatus, code, message } = toKlingError(appError, req);
    const body: KlingFailure = { code, message, request_id: requestId };
    res.status(httpStatus).json(body);
  };
}

export const klingRouteNotFound: RequestHandler = (req) => {
  throw new AppError('ROUTE_NOT_FOUND', `No route for ${req.method} ${req.baseUrl}${req.path}`);
};
