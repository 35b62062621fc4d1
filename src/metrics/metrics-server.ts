import http, { type Server } from 'node:http';
import { listen } from '../listen';
import type { Metrics } from './metrics';

/**
 * A worker process has no HTTP API; with WORKER_METRICS_PORT set it answers GET /metrics (and
 * /healthz) on that port alone, so Prometheus can scrape its counters too.
 */
export function startMetricsServer(metrics: Metrics, port: number, host = '0.0.0.0'): Promise<Server> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/metrics') {
      metrics.render().then(
        ({ contentType, body }) => res.writeHead(200, { 'content-type': contentType }).end(body),
        (error: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${error.message}`),
      );
      return;
    }
    if (req.method === 'GET' && path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
  });
  return listen(server, port, host);
}
