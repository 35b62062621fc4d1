/**
 * Every error the service answers with on purpose. The code is stable (clients may branch on it);
 * the message is for people. HTTP mapping happens in one place: src/api/error-middleware.ts.
 */
export const ERROR_CATALOG = {
  VALIDATION_FAILED: { status: 400, title: 'Request validation failed' },
  INVALID_JSON: { status: 400, title: 'Request body is not valid JSON' },
  UNAUTHORIZED: { status: 401, title: 'Missing or invalid API key' },
  INVALID_CALLBACK_TOKEN: { status: 401, title: 'Invalid callback token' },
  FORBIDDEN: { status: 403, title: 'Forbidden' },
  TASK_NOT_FOUND: { status: 404, title: 'Task not found' },
  ROUTE_NOT_FOUND: { status: 404, title: 'Route not found' },
  EXTERNAL_TASK_ID_CONFLICT: { status: 409, title: 'external_task_id already used' },
  TASK_NOT_CANCELABLE: { status: 409, title: 'Task can no longer be canceled' },
  TASK_NOT_RETRYABLE: { status: 409, title: 'Only a failed task can be retried' },
  NOTHING_TO_REDELIVER: { status: 409, title: 'Nothing to redeliver' },
  IDEMPOTENCY_KEY_REUSED: { status: 422, title: 'Idempotency-Key reused with a different request' },
  TENANT_RATE_LIMITED: { status: 429, title: 'Too many submits' },
  TENANT_IN_FLIGHT_LIMIT: { status: 429, title: 'Too many tasks in flight' },
  PAYLOAD_TOO_LARGE: { status: 413, title: 'Request body too large' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, title: 'Request body must be application/json' },
  SERVICE_UNAVAILABLE: { status: 503, title: 'Service temporarily unavailable' },
  INTERNAL: { status: 500, title: 'Internal server error' },
} as const;

export type ErrorCode = keyof typeof ERROR_CATALOG;

export interface FieldError {
  path: string;
  message: string;
}

export class AppError extends Error {
  readonly status: number;
  readonly title: string;

  constructor(
    readonly code: ErrorCode,
    message: string = ERROR_CATALOG[code].title,
    readonly details: { errors?: FieldError[]; [key: string]: unknown } = {},
  ) {
    super(message);
    this.name = 'AppError';
    this.status = ERROR_CATALOG[code].status;
    this.title = ERROR_CATALOG[code].title;
  }
}

export const taskNotFound = (id: string) => new AppError('TASK_NOT_FOUND', `No task ${JSON.stringify(id)} for this API key`);
