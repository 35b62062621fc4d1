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
  /** Set on a create that `rateLimit` refused (429 / 1302). */
  rateLimited?: boolean;
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
  /**
   * Off by default. Creates beyond `max` in any sliding `windowMs` answer HTTP 429
   * `{ code: 1302, message: 'rate limit exceeded' }` with `Retry-After` (seconds, rounded up) and are not
   * recorded as accepted; see `acceptedCreateTimes` and `maxAcceptedInWindow`.
   */
  rateLimit?: { max: number; windowMs: number };
  /**
   * Off by default. A callback answered non-2xx, or whose connection fails, is sent again up to `attempts`
   * more times, `delayMs` apart (as Kling may). Every try is recorded in `callbackResponses` (a failed
   * connection as status 0 with `error`).
   */
  callbackRetries?: { attempts: number; delayMs: number };
  /**
   * Off by default. Holds the answer to every unscripted create this long (ms, or uniformly random in
   * [minMs, maxMs]); the task exists from the moment the request arrives, so a client that dies or times
   * out meanwhile leaves a task upstream that look-ups find (and that calls back).
   */
  createDelayMs?: number | { minMs: number; maxMs: number };
  /**
   * Default true: a create reusing an external_task_id answers 1201 (Kling's check). false: it makes a
   * second task, as if Kling did not check, so a duplicate submit shows up in `tasks` instead of bouncing.
   */
  uniqueExternalTaskId?: boolean;
}

export class FakeKling {
  readonly requests: RecordedRequest[] = [];
  readonly tasks = new Map<string, FakeTask>();
  readonly callbackResponses: { url: string; status: number; body: FakeTask['task_status']; error?: string; attempt?: number }[] = [];
  /** Arrival times of the creates the rate limiter let through (every create when there is no limit). */
  readonly acceptedCreateTimes: number[] = [];
  /** Creates answered 429 by `rateLimit`. */
  rateLimitedCreates = 0;
  /** Create requests received and not answered yet (e.g. held by `createDelayMs`). */
  createsInFlight = 0;
  private readonly replies: ScriptedReply[] = [];
  private readonly server: Server;
  private nextId = 900_000_000_000_000_000n;
  private pendingCallbacks = new Set<Promise<void>>();
  options: FakeKlingOptions;
  baseUrl = '';

  constructor(options: FakeKlingOptions = {}) {
    this.options = { callbacks: 'normal', callbackDelayMs: 20, outcome: 'succeed', ...options };
    // A client killed mid-request (fault tests) makes reading the body throw: drop that request quietly.
    this.server = createServer((req, res) => void this.handle(req, res).catch(() => res.destroy()));
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

  /** How many upstream tasks exist per external_task_id (more than 1 only with `uniqueExternalTaskId: false`). */
  tasksPerExternalId(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const task of this.tasks.values()) {
      const id = task.task_info.external_task_id;
      if (id !== null) counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    return counts;
  }

  /** The most creates accepted within any sliding window of `windowMs` (default: the rate limit's window). */
  maxAcceptedInWindow(windowMs = this.options.rateLimit?.windowMs ?? 1_000): number {
    const times = this.acceptedCreateTimes;
    let max = 0;
    for (let first = 0, last = 0; last < times.length; last++) {
      while (times[last]! - times[first]! >= windowMs) first++;
      max = Math.max(max, last - first + 1);
    }
    return max;
  }

  /** Sends a callback for `task` with the given status now (tests use it to craft races). */
  async sendCallback(task: FakeTask, overrides: Partial<FakeTask> = {}): Promise<number> {
    return this.deliverCallback(task, overrides);
  }

  private async deliverCallback(task: FakeTask, overrides: Partial<FakeTask>, retry?: { attempt: number; timeoutMs: number }): Promise<number> {
    if (!task.callbackUrl) throw new Error('task has no callback_url');
    const body = { ...this.view(task), ...overrides };
    const response = await fetch(task.callbackUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      ...(retry ? { signal: AbortSignal.timeout(retry.timeoutMs) } : {}),
    });
    await response.arrayBuffer().catch(() => undefined);
    this.callbackResponses.push({ url: task.callbackUrl, status: response.status, body: body.task_status, ...(retry ? { attempt: retry.attempt } : {}) });
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
    const record: RecordedRequest = { method: req.method ?? '', path, headers: req.headers, body, at: Date.now() };
    this.requests.push(record);
    const send = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
      if (res.destroyed) return;
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(payload));
    };
    if (this.options.expectedBearer && req.headers.authorization !== `Bearer ${this.options.expectedBearer}`) {
      return send(401, { code: 1002, message: 'Authorization is invalid', request_id: 'x' });
    }
    const elementsPath = '/v1/general/advanced-custom-elements';
    if (req.method === 'POST' && path === elementsPath) return this.handleCreate(body, send, res, record);
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
    record?: RecordedRequest,
  ): Promise<void> {
    const retryAfterS = this.rateLimitRetryAfterSeconds();
    if (retryAfterS !== undefined) {
      this.rateLimitedCreates++;
      if (record) record.rateLimited = true;
      return send(429, { code: 1302, message: 'rate limit exceeded', request_id: 'x' }, { 'retry-after': String(retryAfterS) });
    }
    this.acceptedCreateTimes.push(Date.now());
    this.createsInFlight++;
    try {
      await this.answerCreate(body, send, res);
    } finally {
      this.createsInFlight--;
    }
  }

  /** With `rateLimit`: undefined when a create may pass now, else the seconds until one may. */
  private rateLimitRetryAfterSeconds(): number | undefined {
    const limit = this.options.rateLimit;
    if (!limit) return undefined;
    const now = Date.now();
    const inWindow = this.acceptedCreateTimes.filter((at) => at > now - limit.windowMs);
    if (inWindow.length < limit.max) return undefined;
    const freesAt = inWindow[inWindow.length - limit.max]! + limit.windowMs;
    return Math.max(1, Math.ceil((freesAt - now) / 1000));
  }

  private createDelay(): number {
    const delay = this.options.createDelayMs;
    if (delay === undefined) return 0;
    if (typeof delay === 'number') return delay;
    return Math.round(delay.minMs + Math.random() * (delay.maxMs - delay.minMs));
  }

  private async answerCreate(
    body: any,
    send: (status: number, payload: unknown, headers?: Record<string, string>) => void,
    res?: ServerResponse,
  ): Promise<void> {
    const scripted = this.replies.shift();
    const heldMs = scripted ? 0 : this.createDelay();
    const early = (scripted?.acceptAnyway && scripted.acceptAt === 'receipt') || heldMs > 0 ? this.accept(body) : undefined;
    if (scripted?.delayMs) await new Promise((resolve) => setTimeout(resolve, scripted.delayMs));
    if (heldMs > 0) await new Promise((resolve) => setTimeout(resolve, heldMs));
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
    if (externalId && this.options.uniqueExternalTaskId !== false && this.taskByExternalId(externalId)) return 'duplicate';
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
    const retries = this.options.callbackRetries;
    if (!retries) {
      try {
        await this.sendCallback(task);
      } catch {
        // The service may be shutting down at the end of a test.
      }
      return;
    }
    for (let attempt = 1; attempt <= 1 + retries.attempts; attempt++) {
      if (attempt > 1) await new Promise((resolve) => setTimeout(resolve, retries.delayMs));
      try {
        const status = await this.deliverCallback(task, {}, { attempt, timeoutMs: 10_000 });
        if (status >= 200 && status < 300) return;
      } catch (error) {
        const cause = (error as { cause?: { code?: string } }).cause;
        this.callbackResponses.push({
          url: task.callbackUrl ?? '',
          status: 0,
          body: task.task_status,
          error: cause?.code ?? (error as Error).message,
          attempt,
        });
      }
    }
  }
}

export async function startFakeKling(options: FakeKlingOptions = {}): Promise<FakeKling> {
  return new FakeKling(options).start();
}
