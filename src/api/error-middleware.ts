import type { ErrorRequestHandler, RequestHandler } from 'express';
import { z } from 'zod';
import { isDatabaseUnavailable } from '../db/db-errors';
import { AppError, ERROR_CATALOG, type ErrorCode } from '../errors';
import type { Logger } from '../logger';

/** RFC 9457 problem details, as every /v1 error answers (also the OpenAPI description of them). */
export const problemSchema = z
  .looseObject({
    type: z.string().meta({ description: 'A URI naming the problem type', example: 'https://kling-element-tracker.dev/problems/validation-failed' }),
    title: z.string(),
    status: z.int(),
    detail: z.string().meta({ description: 'What went wrong, for people' }),
    code: z.enum(Object.keys(ERROR_CATALOG) as [ErrorCode, ...ErrorCode[]]).meta({ description: 'Stable error code; clients may branch on it' }),
    errors: z
      .array(z.object({ path: z.string().meta({ description: 'Dotted path of the field, e.g. element_image_list.refer_images.0.image_url' }), message: z.string() }))
      .optional()
      .meta({ description: 'For VALIDATION_FAILED: every bad field' }),
    task_id: z.string().optional().meta({ description: 'For conflicts: the task that already has the external_task_id or Idempotency-Key' }),
  })
  .meta({ title: 'Problem' });

export type Problem = z.infer<typeof problemSchema>;

/** Errors from express.json() (body-parser) carry a `type` we translate to our catalog. */
function fromBodyParser(error: { type?: string; message?: string }): AppError | undefined {
  if (error.type === 'entity.parse.failed') return new AppError('INVALID_JSON', `Request body is not valid JSON: ${error.message}`);
  if (error.type === 'entity.too.large') return new AppError('PAYLOAD_TOO_LARGE');
  if (error.type === 'encoding.unsupported' || error.type === 'charset.unsupported') return new AppError('UNSUPPORTED_MEDIA_TYPE', error.message);
  return undefined;
}

/** How long a client should wait before retrying while a dependency is down. */
export const RETRY_AFTER_SECONDS = 5;

/** Seconds for the Retry-After header: dependency outages and per-tenant limits say when to come back. */
export function retryAfterSeconds(error: AppError): number | undefined {
  if (error.code === 'SERVICE_UNAVAILABLE') return RETRY_AFTER_SECONDS;
  return typeof error.details.retry_after_s === 'number' ? error.details.retry_after_s : undefined;
}

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
    // req.log (request-logging.ts) carries the request id.
    const log = req.log ?? logger;
    const retryAfter = retryAfterSeconds(appError);
    if (retryAfter !== undefined) res.set('Retry-After', String(retryAfter));
    if (appError.code === 'SERVICE_UNAVAILABLE') {
      log.warn({ method: req.method, path: req.baseUrl + req.path, reason: (error as Error)?.message }, 'dependency unavailable');
    } else if (appError.status >= 500) {
      log.error({ err: error, method: req.method, path: req.baseUrl + req.path }, 'request failed');
    }
    res.status(appError.status).type('application/problem+json').json(toProblem(appError));
  };
}

export const routeNotFound: RequestHandler = (req) => {
  throw new AppError('ROUTE_NOT_FOUND', `No route for ${req.method} ${req.path}`);
};
