import { Agent, createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';

/**
 * The bench's upstream: a fast fake Kling, adapted from test/helpers/fake-kling.ts to stay cheap at
 * 10,000+ tasks (maps instead of scans, nothing recorded per request). It accepts every create, answers
 * at once, then calls back `processing` and `succeed` (with an element) on the task's callback_url. It
 * runs as its own process (forked by the bench, talking over IPC), so its work and timers do not share
 * an event loop with the load generator.
 *
 * Callback-to-visible latency: for each callback, the clock starts when the callback is sent; once the
 * API has answered it, the fake GETs /v1/tasks/:id as a client would (with the bench tenant's key) until
 * the task shows the reported status (or a later one); the clock stops at that answer.
 */

interface FakeTask {
  task_id: string;
  task_status: 'submitted' | 'processing' | 'succeed' | 'failed';
  task_status_msg: string;
  task_info: { external_task_id: string | null };
  task_result: Record<string, unknown>;
  created_at: number;
  updated_at: number;
  callbackUrl: string | null;
  elementName: string;
}

export type FakeKlingCommand =
  | { cmd: 'configure'; apiBaseUrl: string; apiKey: string; callbackDelayMs: number; measure: boolean }
  | { cmd: 'reset' }
  | { cmd: 'stats' }
  | { cmd: 'stop' };

export interface FakeKlingStats {
  creates: number;
  /** Creates that named an external_task_id already seen: the same task sent upstream twice. */
  duplicateCreates: number;
  gets: number;
  callbacksSent: number;
  /** Status webhooks received on CLIENT_WEBHOOK_PATH (the bench's tasks name it as their callback_url with --client-webhooks). */
  clientWebhooks: number;
  /** Callbacks answered non-2xx or that failed at the socket. */
  callbackErrors: number;
  callbackErrorExamples: string[];
  /** Callback sent → GET shows the status, ms. */
  visibleMs: number[];
  /** When each of visibleMs's callbacks was sent (wall clock, epoch ms), to split the burst by time. */
  visibleSentAt: number[];
  /** Callback sent → its answer read, ms (the first part of visibleMs). */
  callbackAnsweredMs: number[];
  /**
   * The same for the callbacks that had to open a new connection to the API (no idle kept-alive one was
   * free). They wait longest: a busy Node process accepts one new connection per turn of its event loop,
   * and they come in clusters, which it works through at its own pace (bench/README.md, ninth session).
   */
  callbackAnsweredOnNewConnectionMs: number[];
  /**
   * Each measured callback: its URL's path, when it was sent (epoch ms) and whether it went on a
   * kept-alive connection, to match against the API's request log (when the API's router got it).
   */
  callbackSends: CallbackSend[];
  /** Visibility checks that never saw the status within VISIBLE_TIMEOUT_MS, or failed. */
  visibleFailures: number;
  pendingCallbacks: number;
  /** Requests sent again because a kept-alive socket had just been closed by the API (not errors). */
  keepAliveRetries: number;
  /**
   * This process's own event-loop delay since the last reset, ms: how late it got to its sockets and
   * timers. Callback → visible includes it (twice: the callback's answer, then the GET's).
   */
  eventLoopDelayMs?: { p50: number; p99: number; max: number };
}

export interface CallbackSend {
  path: string;
  sentAt: number;
  reused: boolean;
}

export type FakeKlingMessage = { type: 'ready'; url: string } | { type: 'stats'; stats: FakeKlingStats } | { type: 'stopped' };

interface HttpAnswer {
  status: number;
  body: string;
  /** Sent on a kept-alive connection (false: a new connection was opened for it). */
  reusedConnection: boolean;
}

const ELEMENTS_PATH = '/v1/general/advanced-custom-elements';
/** Where the bench's clients take their status webhooks (`--client-webhooks`): this process answers them. */
export const CLIENT_WEBHOOK_PATH = '/client-webhook';
const RANK: Record<string, number> = { queued: 0, submitted: 1, processing: 2, succeed: 3, failed: 3, canceled: 3 };
const VISIBLE_TIMEOUT_MS = 10_000;

class BenchFakeKling {
  private readonly tasks = new Map<string, FakeTask>();
  private readonly byExternalId = new Map<string, FakeTask>();
  private nextId = 900_000_000_000_000_000n;
  private readonly agent = new Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });
  private readonly server = createServer((req, res) => void this.handle(req, res).catch(() => res.destroy()));
  private apiBaseUrl = '';
  private apiKey = '';
  private callbackDelayMs = 0;
  private measure = false;
  private readonly loopDelay = monitorEventLoopDelay({ resolution: 5 });
  stats: FakeKlingStats = BenchFakeKling.emptyStats();

  static emptyStats(): FakeKlingStats {
    return { creates: 0, duplicateCreates: 0, gets: 0, callbacksSent: 0, clientWebhooks: 0, callbackErrors: 0, callbackErrorExamples: [], visibleMs: [], visibleSentAt: [], callbackAnsweredMs: [], callbackAnsweredOnNewConnectionMs: [], callbackSends: [], visibleFailures: 0, pendingCallbacks: 0, keepAliveRetries: 0 };
  }

  async start(): Promise<string> {
    this.server.keepAliveTimeout = 60_000;
    this.loopDelay.enable();
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  configure(command: Extract<FakeKlingCommand, { cmd: 'configure' }>): void {
    this.apiBaseUrl = command.apiBaseUrl;
    this.apiKey = command.apiKey;
    this.callbackDelayMs = command.callbackDelayMs;
    this.measure = command.measure;
  }

  reset(): void {
    const pending = this.stats.pendingCallbacks;
    this.stats = BenchFakeKling.emptyStats();
    this.stats.pendingCallbacks = pending;
    this.loopDelay.reset();
  }

  /** The stats with this process's event-loop delay as it stands. */
  snapshot(): FakeKlingStats {
    const ms = (ns: number) => Math.round(ns / 1e4) / 100;
    return { ...this.stats, eventLoopDelayMs: { p50: ms(this.loopDelay.percentile(50)), p99: ms(this.loopDelay.percentile(99)), max: ms(this.loopDelay.max) } };
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.agent.destroy();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const path = (req.url ?? '').split('?')[0] ?? '';
    const send = (status: number, payload: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(payload));
    };
    if (req.method === 'POST' && path === ELEMENTS_PATH) {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
      const externalId: string | null = body.external_task_id || null;
      if (externalId && this.byExternalId.has(externalId)) {
        this.stats.duplicateCreates++;
        return send(400, { code: 1201, message: `external_task_id ${externalId} already exists`, request_id: 'bench' });
      }
      const now = Date.now();
      const task: FakeTask = {
        task_id: String(this.nextId++),
        task_status: 'submitted',
        task_status_msg: '',
        task_info: { external_task_id: externalId },
        task_result: {},
        created_at: now,
        updated_at: now,
        callbackUrl: body.callback_url ?? null,
        elementName: String(body.element_name ?? ''),
      };
      this.tasks.set(task.task_id, task);
      if (externalId) this.byExternalId.set(externalId, task);
      this.stats.creates++;
      send(200, { code: 0, message: 'SUCCEED', request_id: 'bench', data: this.view(task) });
      this.stats.pendingCallbacks++;
      void this.runCallbacks(task).finally(() => this.stats.pendingCallbacks--);
      return;
    }
    if (req.method === 'POST' && path === CLIENT_WEBHOOK_PATH) {
      this.stats.clientWebhooks++;
      return send(200, { received: true });
    }
    if (req.method === 'GET' && path.startsWith(`${ELEMENTS_PATH}/`)) {
      this.stats.gets++;
      const id = decodeURIComponent(path.slice(ELEMENTS_PATH.length + 1));
      const task = this.tasks.get(id) ?? this.byExternalId.get(id);
      if (!task) return send(400, { code: 1201, message: 'Task not found by id/external id', request_id: 'bench' });
      return send(200, { code: 0, message: 'SUCCEED', request_id: 'bench', data: this.view(task) });
    }
    send(404, { code: 1202, message: 'The requested method is invalid', request_id: 'bench' });
  }

  private view(task: FakeTask) {
    const { callbackUrl: _url, elementName: _name, ...rest } = task;
    return rest;
  }

  private async runCallbacks(task: FakeTask): Promise<void> {
    if (!task.callbackUrl) return;
    const wait = () => (this.callbackDelayMs > 0 ? new Promise((resolve) => setTimeout(resolve, this.callbackDelayMs)) : Promise.resolve());
    await wait();
    Object.assign(task, { task_status: 'processing', updated_at: Date.now() });
    await this.callback(task);
    await wait();
    Object.assign(task, {
      task_status: 'succeed',
      updated_at: Date.now(),
      task_result: { elements: [{ element_id: '987654321987654321', element_name: task.elementName, status: 'succeed', owned_by: '1' }] },
    });
    await this.callback(task);
  }

  private async callback(task: FakeTask): Promise<void> {
    const status = task.task_status;
    const started = performance.now();
    const sentAt = Date.now();
    this.stats.callbacksSent++;
    try {
      const answer = await this.http('POST', task.callbackUrl!, JSON.stringify(this.view(task)));
      if (answer.status < 200 || answer.status > 299) throw new Error(`callback answered HTTP ${answer.status}: ${answer.body.slice(0, 200)}`);
      if (this.measure) {
        const answeredMs = performance.now() - started;
        this.stats.callbackAnsweredMs.push(answeredMs);
        if (!answer.reusedConnection) this.stats.callbackAnsweredOnNewConnectionMs.push(answeredMs);
        this.stats.callbackSends.push({ path: new URL(task.callbackUrl!).pathname, sentAt, reused: answer.reusedConnection });
      }
    } catch (error) {
      this.stats.callbackErrors++;
      if (this.stats.callbackErrorExamples.length < 5) this.stats.callbackErrorExamples.push((error as Error).message);
      return;
    }
    // Measured off the callback path: the next callback does not wait for the client's view.
    if (this.measure && task.task_info.external_task_id) void this.measureVisible(task.task_info.external_task_id, status, started, sentAt);
  }

  private async measureVisible(taskId: string, status: string, started: number, sentAt: number): Promise<void> {
    const deadline = started + VISIBLE_TIMEOUT_MS;
    try {
      for (;;) {
        const answer = await this.http('GET', `${this.apiBaseUrl}/v1/tasks/${encodeURIComponent(taskId)}`, undefined, { authorization: `Bearer ${this.apiKey}` });
        if (answer.status === 200) {
          const seen = (JSON.parse(answer.body) as { status: string }).status;
          if ((RANK[seen] ?? -1) >= RANK[status]!) {
            this.stats.visibleMs.push(performance.now() - started);
            this.stats.visibleSentAt.push(sentAt);
            return;
          }
        }
        if (performance.now() > deadline) throw new Error(`task ${taskId} never showed ${status}`);
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    } catch {
      this.stats.visibleFailures++;
    }
  }

  /**
   * One request; sent again when a kept-alive socket turns out to have been closed by the server just as
   * it was reused (the request never reached the server: Node's documented keep-alive race).
   */
  private async http(method: string, url: string, body?: string, headers: Record<string, string> = {}): Promise<HttpAnswer> {
    for (let retry = 0; ; retry++) {
      try {
        return await this.httpOnce(method, url, body, headers);
      } catch (error) {
        // Several idle sockets may have been closed at once: each retry takes the next one (or a new one).
        if (!(error as { reusedSocketReset?: boolean }).reusedSocketReset || retry >= 5) throw error;
        this.stats.keepAliveRetries++;
      }
    }
  }

  private httpOnce(method: string, url: string, body?: string, headers: Record<string, string> = {}): Promise<HttpAnswer> {
    return new Promise((resolve, reject) => {
      const req = request(
        url,
        { method, agent: this.agent, headers: { ...headers, ...(body !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {}) } },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, reusedConnection: req.reusedSocket }));
          res.on('error', reject);
        },
      );
      req.setTimeout(30_000, () => req.destroy(new Error('timed out')));
      req.on('error', (error: NodeJS.ErrnoException) => {
        if (req.reusedSocket && error.code === 'ECONNRESET') Object.assign(error, { reusedSocketReset: true });
        reject(error);
      });
      req.end(body);
    });
  }
}

/** Child-process entry: `fork(dist/bench/fake-kling.js)`, then talk with FakeKlingCommand messages. */
async function main(): Promise<void> {
  const fake = new BenchFakeKling();
  const url = await fake.start();
  const reply = (message: FakeKlingMessage) => process.send?.(message);
  process.on('message', (command: FakeKlingCommand) => {
    switch (command.cmd) {
      case 'configure':
        fake.configure(command);
        break;
      case 'reset':
        fake.reset();
        break;
      case 'stats':
        reply({ type: 'stats', stats: fake.snapshot() });
        break;
      case 'stop':
        void fake.stop().finally(() => {
          reply({ type: 'stopped' });
          process.disconnect?.();
          process.exit(0);
        });
        break;
    }
  });
  // The bench died without saying stop: do not linger.
  process.on('disconnect', () => process.exit(0));
  reply({ type: 'ready', url });
}

if (require.main === module) void main();
