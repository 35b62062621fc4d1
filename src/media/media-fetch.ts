import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import { ForbiddenAddressError, guardedLookup, isForbiddenAddress } from '../webhooks/safe-address';

/**
 * Reading a client's media URL as Kling would, but carefully: the same private-address guard as client
 * webhooks (on every redirect hop, on the address actually connected to), a bounded number of
 * redirects, an inactivity timeout, and never more bytes than asked for.
 */

export interface MediaFetchOptions {
  /** Inactivity limit: connecting, or waiting for the next bytes, longer than this fails the fetch. */
  timeoutMs: number;
  maxRedirects: number;
  allowPrivate: boolean;
}

/** Why a medium could not be read: `invalid` will not change by retrying; `unavailable` may. */
export class MediaFetchError extends Error {
  constructor(
    readonly kind: 'invalid' | 'unavailable',
    message: string,
  ) {
    super(message);
    this.name = 'MediaFetchError';
  }
}

export interface MediaRequest {
  method?: 'GET' | 'HEAD';
  /** Inclusive byte range (`Range: bytes=start-end`); a server may ignore it and answer 200. */
  range?: { start: number; end: number };
  /** Stop reading past this many bytes (the answer is then `truncated`). */
  maxBytes: number;
  /** A file announced (Content-Length) as larger than this is not read at all: the answer comes back empty and `truncated`. */
  rejectAbove?: number;
  /** Called per chunk as it arrives; returning true stops reading (the rest is not needed). */
  onChunk?: (chunk: Buffer, offset: number) => boolean;
  /** Hand chunks to onChunk only, keeping none (a long read that only a parser needs). */
  discardBody?: boolean;
}

export interface MediaResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Where the bytes came from, after redirects. */
  url: string;
  /** The bytes read (empty with discardBody). */
  body: Buffer;
  bytesRead: number;
  /** True when reading stopped before the end (maxBytes reached or onChunk said stop). */
  truncated: boolean;
  /** The whole file's size when the server said (Content-Range total, or Content-Length of a 200). */
  totalBytes?: number;
}

/** What identifies one version of a file on its server: its ETag, else its size. */
export const validatorOf = (response: Pick<MediaResponse, 'headers' | 'totalBytes'>): string | undefined => {
  const etag = response.headers.etag;
  if (etag) return `etag:${etag}`;
  return response.totalBytes !== undefined ? `length:${response.totalBytes}` : undefined;
};

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

function totalBytesOf(status: number, headers: http.IncomingHttpHeaders): number | undefined {
  const range = /\/(\d+)\s*$/.exec(headers['content-range'] ?? '');
  if (status === 206 && range?.[1]) return Number(range[1]);
  const length = Number(headers['content-length']);
  return status === 200 && Number.isFinite(length) && headers['content-length'] !== undefined ? length : undefined;
}

/** One HTTP exchange, no redirects followed. */
function exchange(url: URL, request: MediaRequest, options: MediaFetchOptions): Promise<MediaResponse & { location?: string }> {
  return new Promise((resolve, reject) => {
    const host = url.hostname.replace(/^\[|\]$/g, '');
    // IP literals skip DNS, so the guarded lookup never sees them.
    if (!options.allowPrivate && isIP(host) && isForbiddenAddress(host)) {
      return reject(new MediaFetchError('invalid', `${host} is a private, loopback or link-local address`));
    }
    const headers: Record<string, string> = { 'user-agent': 'kling-element-tracker-media-check', accept: '*/*' };
    if (request.range) headers.range = `bytes=${request.range.start}-${request.range.end}`;
    const transport = url.protocol === 'https:' ? https : http;
    const req = transport.request(url, { method: request.method ?? 'GET', headers, lookup: guardedLookup(options.allowPrivate), timeout: options.timeoutMs }, (res) => {
      const status = res.statusCode ?? 0;
      const base = { status, headers: res.headers, url: url.toString(), totalBytes: totalBytesOf(status, res.headers) };
      if (REDIRECTS.has(status) || status < 200 || status >= 300 || request.method === 'HEAD') {
        res.resume();
        return resolve({ ...base, body: Buffer.alloc(0), bytesRead: 0, truncated: false, location: res.headers.location });
      }
      const chunks: Buffer[] = [];
      let received = 0;
      let finished = false;
      const finish = (truncated: boolean) => {
        if (finished) return;
        finished = true;
        if (truncated) res.destroy();
        resolve({ ...base, body: Buffer.concat(chunks), bytesRead: received, truncated });
      };
      // A file announced as too big needs no reading at all.
      if (request.rejectAbove !== undefined && base.totalBytes !== undefined && base.totalBytes > request.rejectAbove) return finish(true);
      res.on('data', (chunk: Buffer) => {
        if (finished) return;
        const room = request.maxBytes - received;
        const kept = chunk.length > room ? chunk.subarray(0, room) : chunk;
        if (!request.discardBody) chunks.push(kept);
        const offset = (request.range?.start ?? 0) + received;
        received += kept.length;
        if (request.onChunk?.(kept, offset) || chunk.length > room) finish(true);
      });
      res.on('end', () => finish(false));
      res.on('error', (error) => (finished ? undefined : reject(new MediaFetchError('unavailable', `reading the answer failed: ${error.message}`))));
    });
    req.on('timeout', () => req.destroy(new MediaFetchError('unavailable', `no answer within ${options.timeoutMs} ms`)));
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (error instanceof MediaFetchError) return reject(error);
      if (error instanceof ForbiddenAddressError) return reject(new MediaFetchError('invalid', error.message));
      if (error.code === 'ENOTFOUND') return reject(new MediaFetchError('invalid', `host ${url.hostname} does not exist`));
      reject(new MediaFetchError('unavailable', `could not be fetched: ${error.code ?? error.message}`));
    });
    req.end();
  });
}

/**
 * Fetches `url`, following up to `maxRedirects` redirects (each checked like the first request).
 * 4xx answers are `invalid` (the URL is wrong); 408, 429 and 5xx, timeouts and network errors are
 * `unavailable` (worth retrying).
 */
export async function fetchMedia(url: string, request: MediaRequest, options: MediaFetchOptions): Promise<MediaResponse> {
  let current = new URL(url);
  for (let hop = 0; ; hop++) {
    const response = await exchange(current, request, options);
    if (REDIRECTS.has(response.status)) {
      if (!response.location) throw new MediaFetchError('invalid', `redirect (HTTP ${response.status}) without a Location`);
      if (hop >= options.maxRedirects) throw new MediaFetchError('invalid', `more than ${options.maxRedirects} redirects`);
      const next = new URL(response.location, current);
      if (next.protocol !== 'http:' && next.protocol !== 'https:') throw new MediaFetchError('invalid', `redirects to a ${next.protocol} URL`);
      current = next;
      continue;
    }
    if (response.status === 408 || response.status === 429 || response.status >= 500) {
      throw new MediaFetchError('unavailable', `the media server answered HTTP ${response.status}`);
    }
    if (response.status < 200 || response.status >= 300) throw new MediaFetchError('invalid', `could not be fetched: HTTP ${response.status}`);
    return response;
  }
}
