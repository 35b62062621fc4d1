import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';

/** Shared plumbing of the real-process fault tests: free ports, waiting with deadlines, no orphans. */

/**
 * A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it; we release it at once).
 * Another process may take it before we use it: callers that start servers on it retry on a clash.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('could not read the free port'))));
    });
  });
}

/** Thrown by a `waitUntil` probe to fail at once instead of retrying (e.g. the process it waits for died). */
export class StopWaiting extends Error {
  override readonly name = 'StopWaiting';
}

/**
 * Polls `probe` until it returns a truthy value. A probe that throws is retried (the thing may not be up
 * yet) unless it throws StopWaiting. Fails after `timeoutMs` naming `what`, the last error and `context()`.
 */
export async function waitUntil<T>(
  probe: () => Promise<T> | T,
  what: string,
  options: { timeoutMs?: number; intervalMs?: number; context?: () => string } = {},
): Promise<NonNullable<T>> {
  const { timeoutMs = 15_000, intervalMs = 50 } = options;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      if (error instanceof StopWaiting) throw error;
      lastError = error;
    }
    if (Date.now() > deadline) {
      const detail = lastError ? ` (last error: ${(lastError as Error)?.message ?? String(lastError)})` : '';
      const context = options.context ? `\n${options.context()}` : '';
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}${detail}${context}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/*
 * No orphans. Jest gives test files a sandboxed `process` whose 'exit' and signal listeners never fire, so
 * clean-up cannot hang off this process's events. Instead the kernel does it: children are started under
 * `setpriv --pdeathsig`, so they get a signal when the jest worker that spawned them dies, however it dies
 * (even SIGKILL). What is not our child (pg_ctl daemonizes the postmaster) gets a reaper: a tiny shell,
 * itself under --pdeathsig TERM, that runs the clean-up commands when it receives that TERM.
 */

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((candidate) => existsSync(candidate));

/** `command args` wrapped so that the process receives `signal` when this process dies (Linux setpriv; as is without it). */
export function dieWithParent(command: string, args: string[], signal: 'KILL' | 'TERM' = 'KILL'): [string, string[]] {
  return SETPRIV ? [SETPRIV, ['--pdeathsig', signal, '--', command, ...args]] : [command, args];
}

/** Quotes one word for sh. */
export const shellQuote = (word: string): string => `'${word.replace(/'/g, `'\\''`)}'`;

export interface Reaper {
  /** Stops the reaper without running its clean-up (the owner cleaned up itself). */
  disarm(): void;
}

const REAPER_SCRIPT = 'trap \'kill "$s" 2>/dev/null; eval "$1"; exit 0\' TERM; while :; do sleep 1 & s=$!; wait "$s"; done';

/**
 * Runs the shell command `cleanup` when this process dies (see above), unless disarmed first. Does not keep
 * this process alive. Without setpriv it does nothing.
 */
export function startReaper(cleanup: string): Reaper {
  if (!SETPRIV) return { disarm: () => undefined };
  const [command, args] = dieWithParent('sh', ['-c', REAPER_SCRIPT, 'reaper', cleanup], 'TERM');
  const reaper = spawn(command, args, { stdio: 'ignore' });
  reaper.on('error', () => undefined);
  reaper.unref();
  return {
    disarm() {
      if (isRunning(reaper)) reaper.kill('SIGKILL');
    },
  };
}

/**
 * A child spawned via dieWithParent should also not keep this process alive by itself: then a test that
 * forgets to stop it still lets jest exit, and the kernel kills it. Callers keep a reference and stop it
 * in afterAll.
 */
export function detach(child: ChildProcess): void {
  child.unref();
  for (const stream of [child.stdout, child.stderr]) (stream as { unref?: () => void } | null)?.unref?.();
}

/** Resolves when `child` has exited (at once if it already has). */
export function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

export const isRunning = (child: ChildProcess | undefined): boolean => !!child && child.exitCode === null && child.signalCode === null;

/** Keeps the last `maxChars` characters of a stream's text, for failure messages. */
export class OutputTail {
  private text = '';
  constructor(private readonly maxChars = 200_000) {}
  push(chunk: string): void {
    this.text += chunk;
    if (this.text.length > this.maxChars * 1.5) this.text = this.text.slice(-this.maxChars);
  }
  /** The last `lines` lines. */
  tail(lines = 40): string {
    return this.text.split('\n').slice(-lines - 1).join('\n');
  }
  toString(): string {
    return this.text;
  }
}
