import { fork, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import type { FakeKlingCommand, FakeKlingMessage, FakeKlingStats } from './fake-kling';

/** Child processes of the bench: the built API, worker and floor, and the fake Kling (over IPC). */

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((candidate) => existsSync(candidate));

/** Linux: the child gets SIGKILL when the bench dies, however it dies (setpriv execs, so the pid is node's). */
function dieWithParent(command: string, args: string[]): [string, string[]] {
  return SETPRIV ? [SETPRIV, ['--pdeathsig', 'KILL', '--', command, ...args]] : [command, args];
}

/**
 * The node flags an npm script of the service starts its process with (`"start:api": "node <flags>
 * dist/src/start-api.js"` in package.json), so the bench runs the API and the worker as `npm run
 * start:api` and `npm run start:worker` do.
 */
export function nodeFlagsOfScript(root: string, script: string): string[] {
  const { scripts } = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { scripts?: Record<string, string> };
  const words = (scripts?.[script] ?? '').trim().split(/\s+/);
  if (words[0] !== 'node' || !words.at(-1)?.endsWith('.js')) {
    throw new Error(`package.json script "${script}" is not "node [flags] <script>.js": ${scripts?.[script]}`);
  }
  return words.slice(1, -1);
}

/** Ports this bench has handed out: the kernel may offer a closed one again before its service listens. */
const handedOut = new Set<number>();

/**
 * A port free on loopback now and not handed out before by this bench. The services listen only later,
 * so without the second condition two of them could get the same port (it happened: the worker failed to
 * listen on the API's port, and the bench read the API's /metrics as the worker's).
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.on('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The process and all its descendants (an API started with API_PROCESSES > 1 is a cluster). */
export function processTree(pid: number): number[] {
  const all = [pid];
  for (let i = 0; i < all.length; i++) {
    try {
      const children = readFileSync(`/proc/${all[i]}/task/${all[i]}/children`, 'utf8').trim();
      if (children) all.push(...children.split(/\s+/).map(Number));
    } catch {
      // gone, or no children file
    }
  }
  return all;
}

function rssOne(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1];
    return kb ? Number(kb) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** Resident set size of a process and its descendants in MiB (Linux /proc), or NaN when it cannot be read. */
export function rssMb(pid: number | undefined): number {
  if (!pid) return Number.NaN;
  return processTree(pid).reduce((sum, one) => sum + rssOne(one), 0);
}

function cpuOne(pid: number, which: 'all' | 'system'): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of stat (utime, stime) are the 12th and 13th after the command name; 100 ticks/s.
    const system = Number(fields[12]) / 100;
    return which === 'system' ? system : Number(fields[11]) / 100 + system;
  } catch {
    return Number.NaN;
  }
}

/** CPU seconds (user + system, or system only) used so far by a process and its live descendants. */
export function cpuSeconds(pid: number | undefined, which: 'all' | 'system' = 'all', tree = true): number {
  if (!pid) return Number.NaN;
  return (tree ? processTree(pid) : [pid]).reduce((sum, one) => sum + cpuOne(one, which), 0);
}

const isRunning = (child: ChildProcess): boolean => child.exitCode === null && child.signalCode === null;

function exited(child: ChildProcess): Promise<void> {
  if (!isRunning(child)) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

export class ServiceChild {
  private child: ChildProcess | undefined;

  constructor(
    readonly name: string,
    private readonly script: string,
    private readonly env: Record<string, string>,
    readonly logFile: string,
    private readonly nodeArgs: string[] = [],
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(): void {
    const out = openSync(this.logFile, 'a');
    const [command, args] = dieWithParent(process.execPath, [...this.nodeArgs, this.script]);
    this.child = spawn(command, args, {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...this.env },
      stdio: ['ignore', out, out],
    });
    closeSync(out);
  }

  running(): boolean {
    return !!this.child && isRunning(this.child);
  }

  log(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  tail(lines = 20): string {
    return this.log().split('\n').slice(-lines - 1).join('\n');
  }

  /** Waits until `ready()` holds, failing early with the log tail if the process exits. */
  async waitUntil(what: string, ready: () => Promise<boolean> | boolean, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.running()) throw new Error(`${this.name} exited while waiting for ${what}; log ${this.logFile}:\n${this.tail()}`);
      try {
        if (await ready()) return;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) throw new Error(`${this.name}: timed out waiting for ${what}; log ${this.logFile}:\n${this.tail()}`);
      await sleep(100);
    }
  }

  async waitHealthy(url: string, path = '/healthz'): Promise<void> {
    await this.waitUntil(`${url}${path}`, async () => {
      const response = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(2_000) });
      await response.arrayBuffer();
      return response.ok;
    });
  }

  /** SIGTERM (graceful: lets --cpu-prof write its profile), SIGKILL after `timeoutMs`. */
  async stop(timeoutMs = 20_000): Promise<void> {
    const child = this.child;
    if (!child || !isRunning(child)) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    await exited(child);
    clearTimeout(timer);
  }

  async kill(): Promise<void> {
    const child = this.child;
    if (!child || !isRunning(child)) return;
    child.kill('SIGKILL');
    await exited(child);
  }
}

/** The fake Kling in its own process, driven over IPC. */
export class FakeKlingChild {
  private child: ChildProcess | undefined;
  url = '';
  private waiters: ((message: FakeKlingMessage) => void)[] = [];
  private readonly onExit = new Set<() => void>();

  async start(): Promise<void> {
    const script = path.join(__dirname, 'fake-kling.js');
    this.child = fork(script, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] });
    this.child.on('message', (message: FakeKlingMessage) => {
      const waiters = this.waiters;
      this.waiters = [];
      for (const waiter of waiters) waiter(message);
    });
    this.child.on('exit', () => {
      for (const fail of this.onExit) fail();
    });
    const ready = await this.next('ready');
    if (ready.type === 'ready') this.url = ready.url;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  private next(type: FakeKlingMessage['type'], timeoutMs = 30_000): Promise<FakeKlingMessage> {
    return new Promise((resolve, reject) => {
      const fail = (error: Error) => {
        clearTimeout(timer);
        this.onExit.delete(onExit);
        reject(error);
      };
      const onExit = () => fail(new Error('fake Kling exited'));
      const timer = setTimeout(() => fail(new Error(`fake Kling did not answer (${type})`)), timeoutMs);
      const wait = (message: FakeKlingMessage) => {
        if (message.type !== type) return void this.waiters.push(wait);
        clearTimeout(timer);
        this.onExit.delete(onExit);
        resolve(message);
      };
      this.onExit.add(onExit);
      this.waiters.push(wait);
    });
  }

  send(command: FakeKlingCommand): void {
    this.child?.send(command);
  }

  async stats(): Promise<FakeKlingStats> {
    const answer = this.next('stats');
    this.send({ cmd: 'stats' });
    const message = await answer;
    if (message.type !== 'stats') throw new Error('unexpected answer');
    return message.stats;
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || !isRunning(child)) return;
    this.send({ cmd: 'stop' });
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited(child);
    clearTimeout(timer);
  }
}
