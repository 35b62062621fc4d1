import type { KlingAuth } from '../config';
import { createAuthorizationSource } from './kling-auth';
import { createSemaphore } from '../semaphore';
import { createHttpExchange, type HttpAnswer } from './http-exchange';
import { klingEnvelopeSchema, klingTaskSchema, parseJsonKeepingBigIds, type KlingTask } from './kling-wire';
import { classifyKlingFailure, parseRetryAfterMs, UpstreamError } from './upstream-error';

export const ELEMENTS_PATH = '/v1/general/advanced-custom-elements';

export interface KlingClientOptions {
  baseUrl: string;
  auth: KlingAuth;
  timeoutMs: number;
  /** Requests in flight at once from this process (KLING_CONCURRENCY), whichever queue asks. */
  maxInFlight?: number;
  /** Told about every HTTP request to Kling once its outcome is known (for metrics). Must not throw. */
  onRequest?: (event: UpstreamRequestEvent) => void;
}

export interface UpstreamRequestEvent {
  operation: 'create' | 'get';
  /** `0` on success, else the UpstreamError code (Kling's business code, `TIMEOUT`, `HTTP_502`…). */
  code: string;
  /** Time on the wire, from sending the request to reading the whole answer (not waiting for a permit). */
  durationSeconds: number;
}

/** Errors that mean the connection was never made: the request certainly did not reach Kling. */
const NEVER_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

function networkError(error: unknown): UpstreamError {
  // By name, not instanceof: the abort's DOMException may come from another realm (e.g. jest's vm context).
  const name = (error as { name?: unknown } | null)?.name;
  if (name === 'TimeoutError' || name === 'AbortError') {
    return new UpstreamError('retryable', 'TIMEOUT', 'Kling did not answer in time', { mayHaveReachedUpstream: true });
  }
  const code = (error as { code?: unknown }).code;
  const known = typeof code === 'string' ? code : 'NETWORK_ERROR';
  return new UpstreamError('retryable', 'NETWORK_ERROR', `Network error reaching Kling: ${(error as Error).message} (${known})`, {
    mayHaveReachedUpstream: !NEVER_SENT_CODES.has(known),
  });
}

/** Codes Kling answers when a task id or external task id does not exist. */
const NOT_FOUND_CODES = new Set([1201, 1203]);

/**
 * The only code that knows Kling's HTTP API: auth, timeouts, envelope, error classification.
 * Every method throws UpstreamError on failure.
 */
export function createKlingClient(options: KlingClientOptions) {
  const authorization = createAuthorizationSource(options.auth);
  const maxInFlight = options.maxInFlight ?? Number.POSITIVE_INFINITY;
  const exchange = createHttpExchange({ maxSockets: maxInFlight });
  const withPermit = createSemaphore(maxInFlight);
  // The timeout starts once a permit is held: waiting for one is not the upstream being slow. The answer
  // is read whole inside the permit: the request is in flight until then.
  const send = (method: 'GET' | 'POST', url: string, headers: Record<string, string>, body: string | undefined, timing: { seconds: number }) =>
    withPermit(async () => {
      const started = performance.now();
      try {
        return await exchange(url, { method, headers, body, timeoutMs: options.timeoutMs });
      } finally {
        timing.seconds = (performance.now() - started) / 1000;
      }
    });

  async function call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ httpStatus: number; code: number; message: string; data: unknown }> {
    const operation = method === 'POST' ? 'create' : 'get';
    // 1003/1004 (token expired / not yet valid) are worth one fresh signature, never more.
    for (let authRetry = 0; ; authRetry++) {
      const timing = { seconds: 0 };
      const report = (code: string) => options.onRequest?.({ operation, code, durationSeconds: timing.seconds });
      // A User-Agent of our own: gateways in front of APIs often refuse requests that carry none.
      const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'kling-element-tracker' };
      const auth = authorization.header();
      if (auth) headers.authorization = auth;
      if (body !== undefined) headers['content-type'] = 'application/json';
      let response: HttpAnswer;
      try {
        response = await send(method, `${options.baseUrl}${path}`, headers, body === undefined ? undefined : JSON.stringify(body), timing);
      } catch (error) {
        const failure = networkError(error);
        report(failure.code);
        throw failure;
      }
      const { text } = response;
      const ok = response.status >= 200 && response.status < 300;
      let envelope: ReturnType<typeof klingEnvelopeSchema.parse> | undefined;
      try {
        const parsed = klingEnvelopeSchema.safeParse(parseJsonKeepingBigIds(text));
        if (parsed.success) envelope = parsed.data;
      } catch {
        // Not JSON: a proxy's error page, classified by HTTP status below.
      }
      const message =
        envelope?.message ||
        (envelope ? `Kling answered HTTP ${response.status} with code ${envelope.code} and no message` : text.slice(0, 200) || response.statusText);
      if (ok && envelope?.code === 0) {
        report('0');
        return { httpStatus: response.status, code: 0, message, data: envelope.data };
      }
      const failure = classifyKlingFailure(response.status, envelope?.code, message, parseRetryAfterMs(response.header('retry-after') ?? null));
      if (ok && !envelope) {
        report('MALFORMED_RESPONSE');
        // A 2xx we cannot read: the request may well have been accepted.
        throw new UpstreamError('retryable', 'MALFORMED_RESPONSE', `Kling answered ${response.status} with an unreadable body`, {
          httpStatus: response.status,
          mayHaveReachedUpstream: true,
        });
      }
      report(failure.code);
      if (failure.details.authExpired && authRetry === 0) {
        authorization.invalidate();
        continue;
      }
      throw failure;
    }
  }

  function parseTask(data: unknown): KlingTask {
    const parsed = klingTaskSchema.safeParse(data);
    if (!parsed.success) {
      throw new UpstreamError('retryable', 'MALFORMED_RESPONSE', `Kling's task data is malformed: ${parsed.error.issues[0]?.message ?? ''}`, {
        mayHaveReachedUpstream: true,
      });
    }
    return parsed.data;
  }

  return {
    /** POST a create request; returns Kling's task (status `submitted` normally). */
    async createElement(body: Record<string, unknown>): Promise<KlingTask> {
      const answer = await call('POST', ELEMENTS_PATH, body);
      return parseTask(answer.data);
    },

    /** Reads one task by Kling's task id or our external task id; null when Kling has no such task. */
    async getElementTask(id: string): Promise<KlingTask | null> {
      try {
        const answer = await call('GET', `${ELEMENTS_PATH}/${encodeURIComponent(id)}`);
        return parseTask(answer.data);
      } catch (error) {
        if (error instanceof UpstreamError && (NOT_FOUND_CODES.has(Number(error.code)) || error.code === 'HTTP_404')) return null;
        throw error;
      }
    },
  };
}

export type KlingClient = ReturnType<typeof createKlingClient>;
