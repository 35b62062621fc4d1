import type { ErrorRequestHandler, RequestHandler } from 'express';
import { isDatabaseUnavailable } from '../db/db-errors';
import { AppError } from '../errors';
import type { Logger } from '../logger';

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  errors?: { path: string; message: string }[];
  [extension: string]: unknown;
}

/** Errors from express.json() (body-parser) carry a `type` we translate to our catalog. */
function fromBodyParser(error: { type?: string; message?: string }): AppError | undefined {
  if (error.type === 'entity.parse.failed') return new AppError('INVALID_JSON', `Request body is not valid JSON: ${error.message}`);
  if (error.type === 'entity.too.large') return new AppError('PAYLOAD_TOO_LARGE');
  if (error.type === 'encoding.unsupported' || error.type === 'charset.unsupported') return new AppError('UNSUPPORTED_MEDIA_TYPE', error.message);
  return undefined;
}

/** How long a client should wait before retrying while a dependency is down. */
export const RETRY_AFTER_SECONDS = 5;

/** Every error becomes an AppError here, and only AppErrors' messages reach clients. */
export function normalizeError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  if (isDatabaseUnavailable(error)) {
    return new AppError('SERVICE_UNAVAILABLE', 'The database is unreachable right now; retry shortly.');
  }
  return fromBodyParser(error as { type?: string }) ?? new AppError('INTERNAL', 'An unexpected error occurred; it has been logged');
}

export function toProblem(error: AppError): Problem {
  const { errors, ...extensions } = error.details;
  return {
    type: `https://kling-element-tracker.dev/problems/${error.code.toLowerCase().replace(/_/g, '-')}`,
    title: error.title,
    status: error.status,
    detail: error.message,
    code: error.code,
    ...extensions,
    ...(errors ? { errors } : {}),
  };
}

export function problemErrorHandler(logger: Logger): ErrorRequestHandler {
  return (error, req, res, _next) => {
    const appError = normalizeError(error);
    if (appError.code === 'SERVICE_UNAVAILABLE') {
      res.set('Retry-After', String(RETRY_AFTER_SECONDS));
      logger.warn({ method: req.method, path: req.baseUrl + req.path, reason: (error as Error)?.message }, 'dependency unavailable');
    } else if (appError.status >= 500) {
      logger.error({ err: error, method: req.method, path: req.baseUrl + req.path }, 'request failed');
    }
    res.status(appError.status).type('application/problem+json').json(toProblem(appError));
  };
}

export const routeNotFound: RequestHandler = (req) => {
  throw new AppError('ROUTE_NOT_FOUND', `No route for ${req.method} ${req.path}`);
};
