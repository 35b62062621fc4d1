import express, { type Router } from 'express';
import type { Metrics } from '../../metrics/metrics';

/** GET /metrics: this process's Prometheus registry (queue depths are read from Redis at each scrape). */
export function metricsRoutes(metrics: Metrics): Router {
  const router = express.Router();
  router.get('/metrics', async (_req, res) => {
    const { contentType, body } = await metrics.render();
    res.type(contentType).send(body);
  });
  return router;
}
