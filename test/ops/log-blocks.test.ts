import { spawn } from 'node:child_process';
import path from 'node:path';
import { assertBuilt, DIST } from '../helpers/service-processes';

/**
 * A process's log lines reach stdout in blocks (src/logger.ts), not one write per line: these check
 * what that must not cost. The logger runs in a child process of its own, writing to a pipe, as the
 * service's processes do.
 */
interface LoggingChild {
  lines: () => { msg: string; n: number }[];
  /** Whether the child was still running when the given number of lines had arrived. */
  untilLines(count: number): Promise<{ running: boolean }>;
  exited: Promise<number | null>;
  kill(): void;
}

function loggingChild(script: string): LoggingChild {
  assertBuilt();
  const preamble = `const { createLogger } = require(${JSON.stringify(path.join(DIST, 'logger.js'))}); const logger = createLogger({ level: 'info' });`;
  const child = spawn(process.execPath, ['-e', `${preamble}\n${script}`], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const waiting: { count: number; resolve: (state: { running: boolean }) => void }[] = [];
  const lines = () =>
    out
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as { msg: string; n: number });
  const settle = () => {
    const complete = out.split('\n').length - 1;
    for (const wait of [...waiting]) {
      if (complete < wait.count) continue;
      waiting.splice(waiting.indexOf(wait), 1);
      wait.resolve({ running: child.exitCode === null && child.signalCode === null });
    }
  };
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
    settle();
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once('close', (code) => {
      // Lines that never came will not come now: the waits end, saying the child is gone.
      for (const wait of waiting.splice(0)) wait.resolve({ running: false });
      resolve(code);
    }),
  );
  return {
    lines,
    untilLines: (count) =>
      new Promise((resolve) => {
        waiting.push({ count, resolve });
        settle();
      }),
    exited,
    kill: () => child.kill('SIGKILL'),
  };
}

describe('log lines are written in blocks, and none is held back or lost', () => {
  test('when a few lines are logged and the process carries on, then they reach stdout while it runs', async () => {
    // Far fewer bytes than a block: only the periodic flush writes them.
    const child = loggingChild(`logger.info({ n: 1 }, 'first'); logger.info({ n: 2 }, 'second'); setTimeout(() => {}, 60_000);`);
    try {
      const { running } = await child.untilLines(2);
      expect(running).toBe(true);
      expect(child.lines().map((line) => [line.msg, line.n])).toEqual([
        ['first', 1],
        ['second', 2],
      ]);
    } finally {
      child.kill();
    }
  });

  test('when the process exits right after logging many blocks, then every line arrives whole and in order', async () => {
    const count = 2_000;
    const child = loggingChild(`for (let n = 0; n < ${count}; n++) logger.info({ n, padding: 'x'.repeat(n % 300) }, 'line'); process.exit(0);`);
    expect(await child.exited).toBe(0);
    const lines = child.lines();
    expect(lines).toHaveLength(count);
    expect(lines.map((line) => line.n)).toEqual(Array.from({ length: count }, (_, n) => n));
  });
});
