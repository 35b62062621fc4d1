import cluster from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';

/**
 * API_PROCESSES > 1: the API processes share one port, so a scrape of GET /metrics reaches one of them
 * in turn and Prometheus, which sees one target, could not add them up. The process that gets the scrape
 * asks the supervisor instead, which collects every API process's registry over node:cluster's IPC
 * channel and answers with their aggregate (prom-client's AggregatorRegistry: counters and histograms
 * summed; each gauge by its own rule, e.g. queue depths, the same in every process, taken once).
 */
const REQUEST = 'kling-element-tracker:metrics-request';
const RESPONSE = 'kling-element-tracker:metrics-response';
/** prom-client's own wait for every process is 5 s; this one only covers a supervisor that never answers. */
const ANSWER_TIMEOUT_MS = 6_000;

interface MetricsRequest {
  type: typeof REQUEST;
  id: number;
}

interface MetricsResponse {
  type: typeof RESPONSE;
  id: number;
  contentType?: string;
  body?: string;
  error?: string;
}

export interface RenderedMetrics {
  contentType: string;
  body: string;
}

const isMessage = <T extends { type: string }>(message: unknown, type: T['type']): message is T =>
  typeof message === 'object' && message !== null && (message as { type?: unknown }).type === type;

/** In the supervisor: answers an API process's request with every API process's metrics. */
export function serveClusterMetrics(): void {
  const aggregator = new AggregatorRegistry();
  cluster.on('message', (worker, message: unknown) => {
    if (!isMessage<MetricsRequest>(message, REQUEST)) return;
    const answer = (response: Omit<MetricsResponse, 'type' | 'id'>): void => {
      if (worker.isConnected()) worker.send({ type: RESPONSE, id: message.id, ...response } satisfies MetricsResponse);
    };
    aggregator.clusterMetrics().then(
      (body) => answer({ contentType: aggregator.contentType, body }),
      (error: Error) => answer({ error: error.message }),
    );
  });
}

/**
 * In an API process under the supervisor: offers `registry` to the supervisor's collections, and returns
 * the function that renders every API process's metrics (rejects when the supervisor cannot collect them).
 */
export function clusterWideMetrics(registry: Registry): () => Promise<RenderedMetrics> {
  AggregatorRegistry.setRegistries(registry);
  // Constructing one in a cluster worker makes prom-client answer the supervisor's collections.
  new AggregatorRegistry();
  const pending = new Map<number, { resolve(value: RenderedMetrics): void; reject(error: Error): void; timer: NodeJS.Timeout }>();
  let nextId = 0;
  process.on('message', (message: unknown) => {
    if (!isMessage<MetricsResponse>(message, RESPONSE)) return;
    const waiting = pending.get(message.id);
    if (!waiting) return;
    pending.delete(message.id);
    clearTimeout(waiting.timer);
    if (message.error !== undefined || message.body === undefined || message.contentType === undefined) {
      waiting.reject(new Error(`the API processes' metrics could not be collected: ${message.error ?? 'empty answer'}`));
    } else waiting.resolve({ contentType: message.contentType, body: message.body });
  });
  return () =>
    new Promise<RenderedMetrics>((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`the supervisor did not answer with the API processes' metrics within ${ANSWER_TIMEOUT_MS} ms`));
      }, ANSWER_TIMEOUT_MS);
      pending.set(id, { resolve, reject, timer });
      process.send?.({ type: REQUEST, id } satisfies MetricsRequest);
    });
}
