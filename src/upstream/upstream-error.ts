/**
 * How a failed upstream call should be handled, decided by Kling's business `code` (HTTP 429 carries
 * both retryable throttling and permanent account errors, so the status alone cannot decide).
 */
export type UpstreamFailureKind =
  /** Try again later: network trouble, 5xx, rate or concurrency limits. */
  | 'retryable'
  /** Will fail the same way again: parameters, content policy, account, auth. */
  | 'permanent';

export class UpstreamError extends Error {
  constructor(
    readonly kind: UpstreamFailureKind,
    /** Kling's business code as text, or our own label (`NETWORK_ERROR`, `TIMEOUT`, `HTTP_502`…). */
    readonly code: string,
    message: string,
    readonly details: {
      httpStatus?: number;
      retryAfterMs?: number;
      /** True when the request may have reached Kling (timeout, dropped connection): the outcome is unknown. */
      mayHaveReachedUpstream?: boolean;
      /** Kling's code asked us to re-sign the JWT. */
      authExpired?: boolean;
    } = {},
  ) {
    super(message);
    this.name = 'UpstreamError';
  }

  get isRateLimit(): boolean {
    return this.code === '1302' || this.code === '1303' || this.details.httpStatus === 429;
  }
}

const RETRYABLE_CODES = new Set([1302, 1303, 5000, 5001, 5002]);
const AUTH_RETRY_CODES = new Set([1003, 1004]);

/** Classifies a non-success answer from Kling. */
export function classifyKlingFailure(httpStatus: number, code: number | undefined, message: string, retryAfterMs?: number): UpstreamError {
  const details = { httpStatus, retryAfterMs };
  if (code !== undefined && code !== 0) {
    const label = String(code);
    if (AUTH_RETRY_CODES.has(code)) return new UpstreamError('permanent', label, message, { ...details, authExpired: true });
    if (RETRYABLE_CODES.has(code)) return new UpstreamError('retryable', label, message, details);
    // A 5xx with an unfamiliar business code is still a server-side fault.
    if (httpStatus >= 500) return new UpstreamError('retryable', label, message, details);
    return new UpstreamError('permanent', label, message, details);
  }
  if (httpStatus >= 500 || httpStatus === 429 || httpStatus === 408) {
    return new UpstreamError('retryable', `HTTP_${httpStatus}`, message, details);
  }
  return new UpstreamError('permanent', `HTTP_${httpStatus}`, message, details);
}

/** Retry-After is either delay-seconds or an HTTP date. */
export function parseRetryAfterMs(header: string | null, now = Date.now()): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
