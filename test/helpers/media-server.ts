import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** How one path answers. */
export interface MediaRoute {
  body?: Buffer;
  contentType?: string;
  /** Honour `Range: bytes=a-b` with 206 (default true). */
  ranges?: boolean;
  /** Send no Content-Length (chunked), so the size is known only by reading. */
  chunked?: boolean;
  etag?: string;
  /** Answer this status instead (with an empty body), e.g. 404 or 503; `statusSequence` wins. */
  status?: number;
  /** Statuses for the first requests in turn (e.g. [503, 503]); later ones answer normally. */
  statusSequence?: number[];
  /** Redirect (302) to this location. */
  redirectTo?: string;
  /** Wait this long before answering. */
  delayMs?: number;
  /** Pause this long between 64 KiB slices of the body (a slow link: a reader that stops early is seen to). */
  sliceDelayMs?: number;
  /** Claim this total size in Content-Range (a server lying about, or a file too big to serve here). */
  claimedTotal?: number;
}

export interface ServedRequest {
  method: string;
  path: string;
  range?: string;
  headers: IncomingHttpHeaders;
  /** Body bytes this answer carried (or started to, for an aborted one). */
  bytesSent: number;
}

/** A media host on loopback: serves test images and videos, with or without byte ranges, slow or failing. */
export class MediaServer {
  readonly requests: ServedRequest[] = [];
  private readonly routes = new Map<string, MediaRoute>();
  private readonly server: Server;
  baseUrl = '';

  constructor() {
    this.server = createServer((req, res) => void this.answer(req.method ?? 'GET', req.url ?? '/', req.headers, res));
  }

  /** Listens on `host` (default loopback), on a free port. */
  async start(host = '127.0.0.1'): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, host, resolve));
    this.baseUrl = `http://${host}:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Serves `route` at `path`; returns its URL. */
  serve(path: string, route: MediaRoute): string {
    this.routes.set(path, { ...route, statusSequence: route.statusSequence && [...route.statusSequence] });
    return `${this.baseUrl}${path}`;
  }

  requestsFor(path: string): ServedRequest[] {
    return this.requests.filter((request) => request.path === path);
  }

  private async answer(method: string, path: string, headers: IncomingHttpHeaders, res: ServerResponse): Promise<void> {
    const served: ServedRequest = { method, path, range: headers.range, headers, bytesSent: 0 };
    this.requests.push(served);
    const route = this.routes.get(path);
    if (route?.delayMs) await new Promise((resolve) => setTimeout(resolve, route.delayMs));
    if (res.destroyed) return;
    const status = route?.statusSequence?.shift() ?? route?.status;
    if (!route || status) return void res.writeHead(route ? status! : 404).end();
    if (route.redirectTo) return void res.writeHead(302, { location: route.redirectTo }).end();
    const body = route.body ?? Buffer.alloc(0);
    const total = route.claimedTotal ?? body.length;
    const common: Record<string, string> = { 'content-type': route.contentType ?? 'application/octet-stream', 'accept-ranges': route.ranges === false ? 'none' : 'bytes' };
    if (route.etag) common.etag = route.etag;
    const range = /^bytes=(\d+)-(\d*)$/.exec(headers.range ?? '');
    let part = body;
    if (range && route.ranges !== false) {
      const start = Number(range[1]);
      const end = Math.min(range[2] ? Number(range[2]) : total - 1, total - 1);
      part = body.subarray(start, end + 1);
      res.writeHead(206, { ...common, 'content-range': `bytes ${start}-${end}/${total}`, 'content-length': String(part.length) });
    } else {
      res.writeHead(200, route.chunked ? common : { ...common, 'content-length': String(total) });
    }
    if (method === 'HEAD') return void res.end();
    // In slices, so a client that stops reading early is seen to have received only part.
    for (let offset = 0; offset < part.length && !res.destroyed; offset += 64 * 1024) {
      const slice = part.subarray(offset, offset + 64 * 1024);
      served.bytesSent += slice.length;
      if (!res.write(slice)) {
        await new Promise<void>((resolve) => {
          const done = () => {
            res.off('drain', done).off('close', done);
            resolve();
          };
          res.on('drain', done).on('close', done);
        });
      }
      if (route.sliceDelayMs) await new Promise((resolve) => setTimeout(resolve, route.sliceDelayMs));
    }
    res.end();
  }
}
