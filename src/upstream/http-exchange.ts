import http from 'node:http';
import https from 'node:https';

export interface HttpExchangeRequest {
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  body?: string;
  /** The whole exchange, from sending to reading the last byte of the answer. */
  timeoutMs: number;
}

export interface HttpAnswer {
  status: number;
  statusText: string;
  /** A response header by its lower-case name (the first value if repeated). */
  header(name: string): string | undefined;
  text: string;
}

/**
 * One request and its whole answer as text, over node:http(s) with kept-alive connections. Not fetch:
 * fetch builds WHATWG streams, abort signals and transferables around every request, and cost the worker
 * about three times the CPU per call to Kling (600–760 vs about 200 µs on loopback).
 *
 * Failures reject with node's own errors: a timeout as an `AbortError` (its `cause` the `TimeoutError`),
 * a refused or reset connection with its `code` (`ECONNREFUSED`, `ECONNRESET`…). Idle kept connections do
 * not hold the process open (node unrefs them). Redirects are answers like any other, not followed (fetch
 * would have followed one, and turned a redirected POST into a GET).
 */
export function createHttpExchange(options: { maxSockets: number; idleConnectionMs?: number }): (url: string, request: HttpExchangeRequest) => Promise<HttpAnswer> {
  // An idle connection is closed after 4 s, before a server's own idle limit (commonly 5 s) can close it
  // under a request just sent on it (fetch's undici does the same). Only idle ones: a slow answer is not cut.
  const agentOptions = { keepAlive: true, maxSockets: options.maxSockets, timeout: options.idleConnectionMs ?? 4_000 };
  const httpAgent = new http.Agent(agentOptions);
  const httpsAgent = new https.Agent(agentOptions);

  /** One attempt. `staleConnection` marks a reused kept connection that failed before any answer came (the server closed it). */
  function attempt(target: URL, request: HttpExchangeRequest, signal: AbortSignal): Promise<HttpAnswer> {
    return new Promise((resolve, reject) => {
      const secure = target.protocol === 'https:';
      const headers = request.body === undefined ? request.headers : { ...request.headers, 'content-length': String(Buffer.byteLength(request.body)) };
      let answered = false;
      const outgoing = (secure ? https : http).request(
        target,
        { method: request.method, headers, agent: secure ? httpsAgent : httpAgent, signal },
        (response) => {
          answered = true;
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () =>
            resolve({
              status: response.statusCode ?? 0,
              statusText: response.statusMessage ?? '',
              header: (name) => {
                const value = response.headers[name];
                return Array.isArray(value) ? value[0] : value;
              },
              text: Buffer.concat(chunks).toString('utf8'),
            }),
          );
          // The signal firing mid-answer, or the connection dropping before the last byte.
          response.on('error', reject);
          response.on('close', () => {
            if (!response.complete) reject(Object.assign(new Error('The connection closed before the answer was complete'), { code: 'ECONNRESET' }));
          });
        },
      );
      outgoing.on('error', (error: NodeJS.ErrnoException) => {
        const stale = outgoing.reusedSocket && !answered && (error.code === 'ECONNRESET' || error.code === 'EPIPE');
        reject(stale ? Object.assign(error, { staleConnection: true }) : error);
      });
      outgoing.end(request.body);
    });
  }

  /**
   * A GET that met a kept connection the server had just closed is sent once more, on a new one (node's
   * documented remedy; the server may close an idle connection as we reuse it). A POST is not: it may have
   * been read, and only the caller can tell whether sending it again is safe.
   */
  async function exchange(url: string, request: HttpExchangeRequest): Promise<HttpAnswer> {
    const target = new URL(url);
    const signal = AbortSignal.timeout(request.timeoutMs);
    try {
      return await attempt(target, request, signal);
    } catch (error) {
      if (request.method !== 'GET' || !(error as { staleConnection?: boolean }).staleConnection) throw error;
      return attempt(target, request, signal);
    }
  }

  return exchange;
}
