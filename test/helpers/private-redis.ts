import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { detach, dieWithParent, exited, freePort, isRunning, OutputTail, shellQuote, startReaper, StopWaiting, waitUntil } from './fault-utils';

/**
 * A throwaway `redis-server` of one test file's own, on a free loopback port, in a temp dir, with no
 * persistence: the fault tests stop, kill and restart it without disturbing the machine's shared Redis
 * (6379), which this helper never touches.
 */
export interface PrivateRedis {
  url: string;
  port: number;
  /** Graceful stop (SIGTERM); resolves when the process is gone. Data is lost (no persistence). */
  stop(): Promise<void>;
  /** Starts it again on the same port; resolves when it answers PING. No-op while it runs. */
  start(): Promise<void>;
  /** SIGKILL; resolves when the process is gone. */
  kill(): Promise<void>;
  /** Stops it (if running) and removes its temp dir. */
  destroy(): Promise<void>;
  running(): boolean;
  /** The server's recent log output, for failure messages. */
  output(): string;
}

const START_TIMEOUT_MS = 10_000;

/** Sends PING over a raw socket; true on +PONG (no client library, so no reconnect noise). */
export function redisPing(port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let answer = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      answer += chunk.toString('utf8');
      if (answer.includes('\r\n')) done(answer.startsWith('+PONG'));
    });
  });
}

export async function startPrivateRedis(): Promise<PrivateRedis> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ket-redis-'));
  // Backstop for a test that never calls destroy(): the server dies with us (pdeathsig), the dir goes too.
  const reaper = startReaper(`rm -rf ${shellQuote(dir)}`);
  const output = new OutputTail(50_000);
  let child: ChildProcess | undefined;
  let port = 0;

  async function launch(): Promise<void> {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', dir, '--logfile', ''];
    const [command, commandArgs] = dieWithParent('redis-server', args);
    const proc = spawn(command, commandArgs, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    detach(proc);
    proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => output.push(chunk));
    proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => output.push(chunk));
    const spawnError = new Promise<Error>((resolve) => proc.once('error', resolve));
    let failure: Error | undefined;
    void spawnError.then((error) => (failure = error));
    await waitUntil(
      async () => {
        if (failure) throw new StopWaiting(`could not run redis-server: ${failure.message}`);
        if (!isRunning(proc)) throw new StopWaiting(`redis-server exited (${proc.exitCode ?? proc.signalCode}) on port ${port}:\n${output.tail(20)}`);
        return redisPing(port, 500);
      },
      `redis-server on port ${port} to answer PING`,
      { timeoutMs: START_TIMEOUT_MS, context: () => output.tail(20) },
    );
  }

  // The free port may be taken between choosing and binding: try a few.
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      await launch();
      break;
    } catch (error) {
      if (child && isRunning(child)) child.kill('SIGKILL');
      if (attempt >= 3 || !/Address already in use/i.test(output.toString())) {
        rmSync(dir, { recursive: true, force: true });
        reaper.disarm();
        throw error;
      }
    }
  }

  async function signal(sig: NodeJS.Signals): Promise<void> {
    const proc = child;
    if (!proc || !isRunning(proc)) return;
    proc.kill(sig);
    await exited(proc);
  }

  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop: () => signal('SIGTERM'),
    kill: () => signal('SIGKILL'),
    async start() {
      if (isRunning(child)) return;
      await launch();
    },
    async destroy() {
      await signal('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      reaper.disarm();
    },
    running: () => isRunning(child),
    output: () => output.toString(),
  };
}
