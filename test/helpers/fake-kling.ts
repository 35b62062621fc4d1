import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A fake Kling over real HTTP on loopback. Happy by default: accepts creates, then calls back
 * `processing` and `succeed` (with an element) on the callback_url it was given. Tests script
 * failures per request, delays, dropped, duplicated or reordered callbacks, and assert on what it saw.
 */

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: any;
  at: number;
}

export interface ScriptedReply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** Hold the answer this long (to provoke client timeouts). */
  delayMs?: number;
  /** Create the task anyway before answering (the request reached Kling, the answer was lost). */
  acceptAnyway?: boolean;
  /**
   * With acceptAnyway: when the task comes into existence. 'answer' (default) = after delayMs, just before
   * the scripted answer; 'receipt' = as soon as the request arrives, so it is visible to queries while the
   * answer is still held back (a create that reached Kling but whose answer was slow or lost).
   */
  acceptAt?: 'answer' | 'receipt';
  /** With acceptAnyway: after the scripted answer, move the task forward and call back as on the happy path. */
  callbacksAnyway?: boolean;
  /** Send this text verbatim as the body instead of JSON (a proxy's error page); content-type text/html unless headers say otherwise. */
  rawBody?: string;
}

export type CallbackPlan = 'normal' | 'none' | 'duplicate' | 'reversed' | 'no-result';

export interface FakeTask {
  task_id: string;
  task_status: 'submitted' | 'processing' | 'succeed' | 'failed';
  task_status_msg: string;
  task_info: { external_task_id: string | null };
  task_result: Record<string, unknown>;
  created_at: number;
  updated_at: number;
  callbackUrl: string | null;
}

export interface FakeKlingOptions {
  /** Bearer token the fake expects (any token when undefined). */
  expectedBearer?: string;
  callbacks?: CallbackPlan;
  /** Delay before each callback. */
  callbackDelayMs?: number;
  /** Final status the fake reports. */
  outcome?: 'succeed' | 'failed';
}

export class FakeKling {
  readonly requests: RecordedRequest[] = [];
  readonly tasks = new Map<string, FakeTask>();
  readonly callbackResponses: { url: string; status: number; body: FakeTask['task_status'] }[] = [];
  private readonly replies: ScriptedReply[] = [];
  private readonly server: Server;
  private nextId = 900_000_000_000_000_000n;
  private pendingCallbacks = new Set<Promise<void>>();
  options: FakeKlingOptions;
  baseUrl = '';

  constructor(options: FakeKlingOptions = {}) {
    this.options = { callbacks: 'normal', callbackDelayMs: 20, outcome: 'succeed', ...options };
    this.server = createServer((req, res) => void this.handle(req, res));
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.baseUrl = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    await Promise.allSettled([...this.pendingCallbacks]);
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** The next create requests get these answers, in order, instead of the happy path. */
  scriptCreate(...replies: ScriptedReply[]): void {
    this.replies.push(...replies);
  }

  /** Scripted create answers not consumed yet. */
  scriptedRemaining(): number {
    return this.replies.length;
  }

  creates(): RecordedRequest[] {
    return this.requests.filter((r) => r.method === 'POST');
  }

  queries(): RecordedRequest[] {
    return this.requests.filter((r) => r.method === 'GET');
  }

  taskByExternalId(externalId: string): FakeTask | undefined {
    return [...this.tasks.values()].find((t) => t.task_info.external_task_id === externalId);
  }

  /** Sends a callback for `task` with the given status now (tests use it to craft races). */
  async sendCallback(task: FakeTask, overrides: Partial<FakeTask> = {}): Promise<number> {
    if (!task.callbackUrl) throw new Error('task has no callback_url');
    const body = { ...this.view(task), ...overrides };
    const response = await fetch(task.callbackUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    this.callbackResponses.push({ url: task.callbackUrl, status: response.status, body: body.task_status });
    return response.status;
  }

  view(task: FakeTask): Omit<FakeTask, 'callbackUrl'> {
    const { callbackUrl: _url, ...rest } = task;
    return rest;
  }

  private envelope(data: unknown, code = 0, message = 'SUCCEED') {
    return { code, message, request_id: `req-${Date.now()}`, data };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const body = raw ? JSON.parse(raw) : undefined;
    const path = (req.url ?? '').split('?')[0] ?? '';
    this.requests.push({ method: req.method ?? '', path, headers: req.headers, body, at: Date.now() });
    const send = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
      if (res.destroyed) return;
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(payload));
    };
    if (this.options.expectedBearer && req.headers.authorization !== `Bearer ${this.options.expectedBearer}`) {
      return send(401, { code: 1002, message: 'Authorization is invalid', request_id: 'x' });
    }
    const elementsPath = '/v1/general/advanced-custom-elements';
    if (req.method === 'POST' && path === elementsPath) return this.handleCreate(body, send, res);
    if (req.method === 'GET' && path.startsWith(`${elementsPath}/`)) {
      const id = decodeURIComponent(path.slice(elementsPath.length + 1));
      const task = this.tasks.get(id) ?? this.taskByExternalId(id);
      if (!task) return send(400, { code: 1201, message: 'Task not found by id/external id', request_id: 'x' });
      return send(200, this.envelope(this.view(task)));
    }
    send(404, { code: 1202, message: 'The requested method is invalid', request_id: 'x' });
  }

  private async handleCreate(
    body: any,
    send: (status: number, payload: unknown, headers?: Record<string, string>) => void,
    res?: ServerResponse,
  ): Promise<void> {
    const scripted = this.replies.shift();
    const early = scripted?.acceptAnyway && scripted.acceptAt === 'receipt' ? this.accept(body) : undefined;
    if (scripted?.delayMs) await new Promise((resolve) => setTimeout(resolve, scripted.delayMs));
    const sendScripted = (reply: ScriptedReply) => {
      if (reply.rawBody === undefined || !res) return send(reply.status, reply.body ?? {}, reply.headers);
      if (res.destroyed) return;
      res.writeHead(reply.status, { 'content-type': 'text/html', ...reply.headers });
      res.end(reply.rawBody);
    };
    if (scripted && !scripted.acceptAnyway) return sendScripted(scripted);
    const task = early ?? this.accept(body);
    if (task === 'duplicate') {
      return send(400, { code: 1201, message: `external_task_id ${body?.external_task_id} already exists`, request_id: 'x' });
    }
    if (scripted) {
      sendScripted(scripted);
      if (scripted.callbacksAnyway) this.track(this.runCallbacks(task, body));
      return;
    }
    send(200, this.envelope(this.view(task)));
    this.track(this.runCallbacks(task, body));
  }

  /** Stores a new task for a create request, or says its external_task_id is taken. */
  private accept(body: any): FakeTask | 'duplicate' {
    const externalId: string | null = body?.external_task_id || null;
    if (externalId && this.taskByExternalId(externalId)) return 'duplicate';
    const now = Date.now();
    const task: FakeTask = {
      task_id: String(this.nextId++),
      task_status: 'submitted',
      task_status_msg: '',
      task_info: { external_task_id: externalId },
      task_result: {},
      created_at: now,
      updated_at: now,
      callbackUrl: body?.callback_url ?? null,
    };
    this.tasks.set(task.task_id, task);
    return task;
  }

  private track(promise: Promise<void>): void {
    this.pendingCallbacks.add(promise);
    void promise.finally(() => this.pendingCallbacks.delete(promise));
  }

  /** Moves the task forward and calls back according to the plan. */
  private async runCallbacks(task: FakeTask, request: any): Promise<void> {
    const wait = () => new Promise((resolve) => setTimeout(resolve, this.options.callbackDelayMs));
    const final = this.options.outcome ?? 'succeed';
    const finalFields: Partial<FakeTask> =
      final === 'succeed'
        ? {
            task_status: 'succeed',
            task_result: {
              elements: [{ element_id: 987654321987654321n.toString(), element_name: request?.element_name, status: 'succeed', owned_by: '1' }],
            },
          }
        : { task_status: 'failed', task_status_msg: 'Image pixel is invalid' };
    const plan = this.options.callbacks;
    await wait();
    Object.assign(task, { task_status: 'processing', updated_at: Date.now() });
    const processing = { ...task };
    if (plan === 'none') {
      await wait();
      Object.assign(task, finalFields, { updated_at: Date.now() });
      return;
    }
    if (plan !== 'reversed') await this.safeCallback(processing);
    await wait();
    Object.assign(task, finalFields, { updated_at: Date.now() });
    const done = { ...task, ...(plan === 'no-result' ? { task_result: {} } : {}) };
    await this.safeCallback(done);
    if (plan === 'duplicate') {
      await this.safeCallback(processing);
      await this.safeCallback(done);
    }
    if (plan === 'reversed') await this.safeCallback(processing);
  }

  private async safeCallback(task: FakeTask): Promise<void> {
    try {
      await this.sendCallback(task);
    } catch {
      // The service may be shutting down at the end of a test.
    }
  }
}

export async function startFakeKling(options: FakeKlingOptions = {}): Promise<FakeKling> {
  return new FakeKling(options).start();
}
