import http from 'node:http';
import type { Queue } from 'bullmq';
import { SseParser } from '../src/live/sse-format';
import { summarize, type LatencySummary } from './load';

/**
 * Issue #9's measurement: `streams` Server-Sent Events connections open at once on `tasks` tasks (held
 * `queued` while they open), the memory they cost the API, then how fast each status change reaches
 * every stream once the tasks run.
 */
export interface SseFanoutOptions {
  apiUrl: string;
  apiKey: string;
  streams: number;
  tasks: number;
  submitQueue: Queue;
  /** The API's RSS and V8 heap in use, MB. */
  apiRssMb: () => number;
  apiHeapMb: () => Promise<number>;
  progress: (text: string) => void;
  timeoutS: number;
}

export interface SseFanoutResult {
  streams: number;
  tasks: number;
  /** Time to open every stream and receive its first event. */
  open_s: number;
  rss_mb: { before: number; with_streams: number };
  heap_mb: { before: number; with_streams: number };
  kb_per_stream: { rss: number; heap: number };
  /** Resume of the submit queue → every stream ended after its task's terminal state. */
  all_terminal_s: number;
  events_received: number;
  /** Commit of a status change (the task's updated_at) → its arrival on a stream. */
  change_to_stream: LatencySummary;
  /** Per task and change, first to last of its streams. */
  spread_across_streams: LatencySummary;
  /** Streams that ended without the terminal state, or failed. */
  errors: number;
}

interface Stream {
  taskId: string;
  /** event id → arrival (ms since epoch) and the change's commit time. */
  arrivals: Map<string, { at: number; committedAt: number }>;
  first: Promise<void>;
  ended: Promise<boolean>;
  close(): void;
}

const TERMINAL = new Set(['succeed', 'failed', 'canceled']);

function openStream(agent: http.Agent, apiUrl: string, apiKey: string, taskId: string): Stream {
  const arrivals = new Map<string, { at: number; committedAt: number }>();
  let gotFirst: () => void = () => undefined;
  let finish: (terminal: boolean) => void = () => undefined;
  let terminal = false;
  const first = new Promise<void>((resolve) => (gotFirst = resolve));
  const ended = new Promise<boolean>((resolve) => (finish = resolve));
  const req = http.get(`${apiUrl}/v1/tasks/${taskId}/stream`, { agent, headers: { authorization: `Bearer ${apiKey}`, accept: 'text/event-stream' } }, (res) => {
    const parser = new SseParser();
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      for (const { id, data } of parser.push(chunk).events) {
        if (!id) continue;
        const task = JSON.parse(data) as { status: string; updated_at: string };
        arrivals.set(id, { at: Date.now(), committedAt: Date.parse(task.updated_at) });
        if (TERMINAL.has(task.status)) terminal = true;
        gotFirst();
      }
    });
    res.on('close', () => finish(terminal));
  });
  req.on('error', () => {
    gotFirst();
    finish(false);
  });
  return { taskId, arrivals, first, ended, close: () => req.destroy() };
}

export async function sseFanout(options: SseFanoutOptions): Promise<SseFanoutResult> {
  const { apiUrl, apiKey } = options;
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  await options.submitQueue.pause();
  const taskIds: string[] = [];
  for (let i = 0; i < options.tasks; i++) {
    const response = await fetch(`${apiUrl}/v1/tasks`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        element_name: `Fan-out ${i}`,
        element_description: 'SSE fan-out bench',
        reference_type: 'image_refer',
        element_image_list: { frontal_image: 'https://example.com/bench/front.png', refer_images: [{ image_url: 'https://example.com/bench/side.png' }] },
      }),
    });
    taskIds.push(((await response.json()) as { task_id: string }).task_id);
  }
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const before = { rss: options.apiRssMb(), heap: await options.apiHeapMb() };

  const opened = performance.now();
  const streams: Stream[] = [];
  for (let i = 0; i < options.streams; i++) {
    streams.push(openStream(agent, apiUrl, apiKey, taskIds[i % taskIds.length]!));
    if (i % 100 === 99) options.progress(`sse: ${i + 1}/${options.streams} streams opening`);
  }
  await Promise.all(streams.map((stream) => stream.first));
  const openS = (performance.now() - opened) / 1000;
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const withStreams = { rss: options.apiRssMb(), heap: await options.apiHeapMb() };
  options.progress(`sse: ${options.streams} streams open on ${options.tasks} tasks; running the tasks`);

  const resumed = performance.now();
  await options.submitQueue.resume();
  const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), options.timeoutS * 1000).unref());
  const outcomes = await Promise.race([Promise.all(streams.map((stream) => stream.ended)), timeout]);
  const allTerminalS = (performance.now() - resumed) / 1000;
  for (const stream of streams) stream.close();
  agent.destroy();

  const latencies: number[] = [];
  const byChange = new Map<string, number[]>();
  let events = 0;
  for (const stream of streams) {
    let firstEvent = true;
    for (const [id, { at, committedAt }] of stream.arrivals) {
      events++;
      const key = `${stream.taskId}/${id}`;
      (byChange.get(key) ?? byChange.set(key, []).get(key)!).push(at);
      // The first event is the snapshot sent on connecting, not a change.
      if (!firstEvent) latencies.push(at - committedAt);
      firstEvent = false;
    }
  }
  const spreads = [...byChange.values()].filter((times) => times.length > 1).map((times) => Math.max(...times) - Math.min(...times));
  const round1 = (value: number) => Math.round(value * 10) / 10;
  return {
    streams: options.streams,
    tasks: options.tasks,
    open_s: Math.round(openS * 100) / 100,
    rss_mb: { before: round1(before.rss), with_streams: round1(withStreams.rss) },
    heap_mb: { before: round1(before.heap), with_streams: round1(withStreams.heap) },
    kb_per_stream: { rss: round1(((withStreams.rss - before.rss) * 1024) / options.streams), heap: round1(((withStreams.heap - before.heap) * 1024) / options.streams) },
    all_terminal_s: Math.round(allTerminalS * 100) / 100,
    events_received: events,
    change_to_stream: summarize(latencies),
    spread_across_streams: summarize(spreads),
    errors: outcomes === 'timeout' ? streams.length : outcomes.filter((terminal) => !terminal).length,
  };
}
