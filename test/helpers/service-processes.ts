import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { detach, dieWithParent, exited, freePort, isRunning, OutputTail, StopWaiting, waitUntil } from './fault-utils';
import { uniqueQueuePrefix } from './test-database';

/**
 * The BUILT entry points (dist/, as an operator runs them) as child processes, for fault tests that kill
 * them for real: `api` = start-api.js, `worker` = start-worker.js, `main` = main.js (both in one process).
 * Output is collected for failure messages; every child is SIGKILLed by `ServiceProcesses.killAll()`
 * (call it in afterAll) and, as a backstop, when the jest worker exits. Needs `npm run build` first.
 */

export const ROOT = path.resolve(__dirname, '../..');
export const DIST = path.join(ROOT, 'dist', 'src');

export type ServiceKind = 'api' | 'worker' | 'main';

const ENTRY_POINTS: Record<ServiceKind, string> = {
  api: 'start-api.js',
  worker: 'start-worker.js',
  main: 'main.js',
};

export interface LogLine {
  level: number;
  msg: string;
  time?: number;
  [key: string]: unknown;
}

export type Exit = { code: number | null; signal: NodeJS.Signals | null };

/** Fails with a clear message when dist/ is missing or older than needed (npm test builds first). */
export function assertBuilt(): void {
  for (const entry of Object.values(ENTRY_POINTS)) {
    if (!existsSync(path.join(DIST, entry))) throw new Error(`dist/src/${entry} is missing: run \`npm run build\` first (npm test does)`);
  }
}

export interface ServiceEnvOptions {
  databaseUrl: string;
  redisUrl: string;
  /** The fake Kling's base URL; omit for sandbox mode. */
  klingBaseUrl?: string;
  klingApiKey?: string;
  /** Default: a unique prefix per call. Processes of one deployment must share it. */
  queuePrefix?: string;
  /** Where Kling calls back: the API process's URL. */
  publicBaseUrl?: string;
  /** Anything else (wins over the defaults). */
  extra?: Record<string, string>;
}

/** Settings the fault tests want unless they say otherwise: fast retries, sweeps and logs as JSON. */
export function serviceEnv(options: ServiceEnvOptions): Record<string, string> {
  const passThrough = Object.fromEntries(
    ['WORKER_STALLED_INTERVAL_MS', 'WORKER_LOCK_DURATION_MS'].flatMap((name) => (process.env[name] ? [[name, process.env[name]!]] : [])),
  );
  return {
    NODE_ENV: 'production',
    LOG_LEVEL: process.env.TEST_SERVICE_LOG_LEVEL ?? 'info',
    DATABASE_URL: options.databaseUrl,
    DATABASE_POOL_SIZE: '5',
    REDIS_URL: options.redisUrl,
    QUEUE_PREFIX: options.queuePrefix ?? uniqueQueuePrefix(),
    ...(options.klingBaseUrl ? { KLING_BASE_URL: options.klingBaseUrl, KLING_API_KEY: options.klingApiKey ?? 'test-kling-key' } : {}),
    ...(options.publicBaseUrl ? { PUBLIC_BASE_URL: options.publicBaseUrl } : {}),
    KLING_RETRY_BASE_DELAY_MS: '100',
    KLING_REQUEST_TIMEOUT_MS: '3000',
    KLING_MAX_ATTEMPTS: '8',
    KLING_POLL_INTERVAL_MS: '5000',
    SWEEP_INTERVAL_MS: '500',
    REQUEUE_AFTER_MS: '2000',
    SANDBOX_STEP_DELAY_MS: '50',
    ALLOW_PRIVATE_CALLBACKS: 'true',
    // Tasks here name placeholder media URLs (test/media covers the media check).
    MEDIA_PRECHECK: 'off',
    ...passThrough,
    ...options.extra,
  };
}

export interface SpawnOptions {
  /** For api/main: the port (default: a free one, kept across restarts). */
  port?: number;
  /** Start-up deadline (default 30 s). */
  readyTimeoutMs?: number;
  /** For api/main: the path that must answer 200 before the process counts as up (default /healthz). */
  readyPath?: string;
}

/** One service process; survives restarts (same env, same port). */
export class ServiceProcess {
  child: ChildProcess | undefined;
  readonly stdout = new OutputTail();
  readonly stderr = new OutputTail(50_000);
  /** Parsed JSON log lines of every run, oldest first (bounded). */
  readonly logs: LogLine[] = [];
  /** How each run ended, in order. */
  readonly exits: (Exit & { at: number; pid: number | undefined; requested: NodeJS.Signals | null })[] = [];
  starts = 0;
  private pending = '';
  private requestedSignal: NodeJS.Signals | null = null;

  constructor(
    readonly kind: ServiceKind,
    readonly env: Record<string, string>,
    public port: number | undefined,
    private readonly options: SpawnOptions = {},
  ) {}

  /** The API's base URL (api and main only). */
  get url(): string {
    if (this.port === undefined) throw new Error(`a ${this.kind} process has no HTTP port`);
    return `http://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  running(): boolean {
    return isRunning(this.child);
  }

  /** Spawns the process and waits until it is up (/healthz for api/main, "worker running" for a worker). */
  async start(): Promise<void> {
    if (this.running()) throw new Error(`${this.label()} is already running`);
    if (this.kind === 'worker' && ['warn', 'error', 'fatal', 'silent'].includes(this.env.LOG_LEVEL ?? 'info')) {
      throw new Error('a worker process is "up" when it logs "worker running" (info): use LOG_LEVEL info, debug or trace');
    }
    const [command, args] = dieWithParent(process.execPath, [path.join(DIST, ENTRY_POINTS[this.kind])]);
    const child = spawn(command, args, {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        ...this.env,
        ...(this.port !== undefined ? { PORT: String(this.port) } : {}),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.starts++;
    this.requestedSignal = null;
    detach(child);
    this.pending = '';
    const marker = `--- ${this.kind} start #${this.starts} (pid ${child.pid}) at ${new Date().toISOString()}\n`;
    this.stdout.push(marker);
    this.stderr.push(marker);
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => this.onStdout(chunk));
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => this.stderr.push(chunk));
    child.once('exit', (code, signal) => {
      this.exits.push({ code, signal, at: Date.now(), pid: child.pid, requested: this.requestedSignal });
    });
    await this.waitUntilReady(child);
  }

  private onStdout(chunk: string): void {
    this.stdout.push(chunk);
    this.pending += chunk;
    const lines = this.pending.split('\n');
    this.pending = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      try {
        this.logs.push(JSON.parse(line) as LogLine);
        if (this.logs.length > 50_000) this.logs.splice(0, 10_000);
      } catch {
        // Not a log line.
      }
    }
  }

  private async waitUntilReady(child: ChildProcess): Promise<void> {
    const timeoutMs = this.options.readyTimeoutMs ?? 30_000;
    const checkAlive = () => {
      if (!isRunning(child)) throw new StopWaiting(`${this.label()} exited (${child.exitCode ?? child.signalCode}) while starting\n${this.describe()}`);
    };
    if (this.kind === 'worker') {
      const logsBefore = this.logs.length;
      await waitUntil(
        () => {
          checkAlive();
          return this.logs.slice(logsBefore).some((line) => line.msg === 'worker running' && line.pid === child.pid);
        },
        `${this.label()} to log "worker running"`,
        { timeoutMs, context: () => this.describe() },
      );
      return;
    }
    await waitUntilHealthy(this.url, { timeoutMs, path: this.options.readyPath, alive: checkAlive, context: () => this.describe() });
  }

  /** Sends `signal` (default SIGKILL) and resolves when the process has exited. No-op if it is not running. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<Exit> {
    const child = this.child;
    if (!child) throw new Error(`${this.label()} was never started`);
    if (!isRunning(child)) return { code: child.exitCode, signal: child.signalCode };
    this.requestedSignal = signal;
    child.kill(signal);
    return exited(child);
  }

  /** Sends SIGTERM; fails (after SIGKILLing it) if the process has not exited within `timeoutMs`. */
  async stop(timeoutMs = 15_000): Promise<Exit> {
    const child = this.child;
    if (!child || !isRunning(child)) return { code: child?.exitCode ?? null, signal: child?.signalCode ?? null };
    this.requestedSignal = 'SIGTERM';
    child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
    const result = await Promise.race([exited(child), timeout]).finally(() => clearTimeout(timer));
    if (result === 'timeout') {
      child.kill('SIGKILL');
      await exited(child);
      throw new Error(`${this.label()} did not exit within ${timeoutMs} ms of SIGTERM\n${this.describe()}`);
    }
    return result;
  }

  /** Ends a running process (SIGTERM by default, or `signal`), then starts it again with the same env and port. */
  async restart(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.running()) {
      if (signal === 'SIGTERM') await this.stop();
      else await this.kill(signal);
    }
    await this.start();
  }

  /** Log lines of the current (or last) run whose msg matches. */
  logsMatching(msg: string | RegExp, allRuns = false): LogLine[] {
    const pid = this.child?.pid;
    return this.logs.filter((line) => (allRuns || line.pid === pid) && (typeof msg === 'string' ? line.msg === msg : msg.test(line.msg)));
  }

  label(): string {
    return `${this.kind} process${this.child?.pid ? ` ${this.child.pid}` : ''}`;
  }

  /** Exit history and the tail of the output, for failure messages. */
  describe(lines = 30): string {
    const exits = this.exits.map((e) => `pid ${e.pid}: ${e.signal ?? `code ${e.code}`}${e.requested ? ` (sent ${e.requested})` : ''}`).join('; ');
    return [
      `[${this.kind}] starts: ${this.starts}, running: ${this.running()}, exits: ${exits || 'none'}`,
      `[${this.kind}] stderr (tail):\n${this.stderr.tail(lines)}`,
      `[${this.kind}] stdout (tail):\n${this.stdout.tail(lines)}`,
    ].join('\n');
  }
}

/** Every service process of a test file, so afterAll can kill them all whatever happened. */
export class ServiceProcesses {
  readonly all: ServiceProcess[] = [];

  /** Creates and starts a process; api/main get a free port (kept across restarts) unless given one. */
  async spawn(kind: ServiceKind, env: Record<string, string>, options: SpawnOptions = {}): Promise<ServiceProcess> {
    assertBuilt();
    for (let attempt = 1; ; attempt++) {
      const port = kind === 'worker' ? undefined : (options.port ?? (await freePort()));
      const proc = new ServiceProcess(kind, env, port, options);
      this.all.push(proc);
      try {
        await proc.start();
        return proc;
      } catch (error) {
        // The free port was taken between choosing and listening: choose another.
        const clash = /EADDRINUSE/.test(proc.stderr.toString());
        if (!clash || options.port !== undefined || attempt >= 3) throw error;
      }
    }
  }

  /** SIGKILLs every child still running and waits for them to be gone. */
  async killAll(): Promise<void> {
    await Promise.all(this.all.map((proc) => (proc.running() ? proc.kill('SIGKILL') : undefined)));
  }

  describe(lines = 30): string {
    return this.all.map((proc) => proc.describe(lines)).join('\n');
  }
}

/**
 * Polls `url + path` (default /healthz) until it answers 200. `alive` may throw StopWaiting (e.g. when
 * the process died) to fail at once.
 */
export async function waitUntilHealthy(
  url: string,
  options: { timeoutMs?: number; path?: string; alive?: () => void; context?: () => string } = {},
): Promise<void> {
  const target = `${url}${options.path ?? '/healthz'}`;
  await waitUntil(
    async () => {
      options.alive?.();
      const response = await fetch(target, { signal: AbortSignal.timeout(2_000) });
      await response.arrayBuffer();
      return response.status === 200;
    },
    `${target} to answer 200`,
    { timeoutMs: options.timeoutMs ?? 30_000, intervalMs: 100, context: options.context },
  );
}

/** Runs `node dist/src/cli/main.js <args>` to completion. */
export async function runCli(args: string[], env: Record<string, string>, timeoutMs = 30_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  assertBuilt();
  const [command, commandArgs] = dieWithParent(process.execPath, [path.join(DIST, 'cli', 'main.js'), ...args]);
  const child = spawn(command, commandArgs, {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const { code } = await exited(child).finally(() => clearTimeout(timer));
  return { code, stdout, stderr };
}

/** A tenant and API key made with the CLI, as an operator would. */
export async function createTenantWithCli(databaseUrl: string, tenant: string): Promise<{ apiKey: string; auth: string }> {
  const result = await runCli(['keys', 'create', '--tenant', tenant], { DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn' });
  if (result.code !== 0) throw new Error(`cli keys create exited ${result.code}: ${result.stderr}`);
  const { api_key: apiKey } = JSON.parse(result.stdout) as { api_key: string };
  return { apiKey, auth: `Bearer ${apiKey}` };
}
