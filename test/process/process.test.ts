import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { Client } from 'pg';
import { nodeFlagsOfScript } from '../../bench/processes';
import { loadMigrations } from '../../src/db/migrate';
import { validImageTask } from '../helpers/factories';
import { sample } from '../helpers/prometheus';
import { ADMIN_DATABASE_URL, uniqueQueuePrefix } from '../helpers/test-database';

/**
 * The built entry points as an operator runs them (`npm start` = node dist/src/main.js; each with the
 * node flags its npm script in package.json gives it): configuration
 * errors stop the process with a message naming the variable; a fresh database is created and migrated
 * on start; sandbox mode is announced; SIGTERM ends the process with exit code 0.
 * Needs `npm run build` first (npm test does it).
 */

const ROOT = path.resolve(__dirname, '../..');
const DIST = path.join(ROOT, 'dist', 'src');
const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
/** Nothing listens here: if a bad configuration were accepted, start-up would fail on connecting instead. */
const UNREACHABLE_DB = 'postgresql://postgres@127.0.0.1:1/ket_never';
const UNREACHABLE_REDIS = 'redis://127.0.0.1:1';
/** Short, so that the test sees the idle collections soon after its busy spell. */
const IDLE_GC_AFTER_MS = 500;

interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

interface Running {
  child: ChildProcess;
  logs: LogLine[];
  stdout(): string;
  stderr(): string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** The npm scripts that start these entry points (package.json), whose node flags the processes get here too. */
const NPM_SCRIPTS: Record<string, string> = { 'main.js': 'start', 'start-api.js': 'start:api', 'start-worker.js': 'start:worker' };

/** Runs `node <its npm script's flags> dist/src/<script>` with exactly `env` (plus PATH), collecting JSON log lines from stdout. */
function run(script: string, env: Record<string, string>, args: string[] = []): Running {
  const npmScript = NPM_SCRIPTS[script];
  const nodeFlags = npmScript ? nodeFlagsOfScript(ROOT, npmScript) : [];
  const child = spawn(process.execPath, [...nodeFlags, path.join(DIST, script), ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NODE_ENV: 'production', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  let pending = '';
  const logs: LogLine[] = [];
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      try {
        logs.push(JSON.parse(line));
      } catch {
        // Not a log line (e.g. the CLI's pretty-printed JSON).
      }
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  );
  return { child, logs, stdout: () => out, stderr: () => err, exit };
}

/** Resolves when the process exits, or kills it and fails after `timeoutMs`. */
async function exitWithin(running: Running, timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      running.child.kill('SIGKILL');
      reject(new Error(`process did not exit within ${timeoutMs} ms; stdout: ${running.stdout()} stderr: ${running.stderr()}`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([running.exit, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function waitFor<T>(probe: () => Promise<T> | T, what: string, timeoutMs = 15_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

// Child processes start Node, connect and migrate: slower than in-process tests, especially on a busy machine.
jest.setTimeout(60_000);

beforeAll(() => {
  if (!existsSync(path.join(DIST, 'main.js'))) throw new Error('dist/src/main.js is missing: run `npm run build` first');
});

describe('a bad configuration value stops the process with exit code 1 and a message naming the variable', () => {
  const entryPoints: [string, string[]][] = [
    ['main.js', []],
    ['start-api.js', []],
    ['start-worker.js', []],
    ['db/migrate-command.js', []],
    ['cli/main.js', ['keys', 'list']],
  ];
  const base = { DATABASE_URL: UNREACHABLE_DB, REDIS_URL: UNREACHABLE_REDIS, QUEUE_PREFIX: 'ket-never' };

  test.each(entryPoints)('when PORT=abc, then %s exits 1 naming PORT', async (script, args) => {
    const running = run(script, { ...base, PORT: 'abc' }, args);
    const { code } = await exitWithin(running, 10_000);
    expect(code).toBe(1);
    expect(running.stderr()).toMatch(/PORT/);
  });

  test('when KLING_ACCESS_KEY is set without KLING_SECRET_KEY, then main.js exits 1 naming KLING_SECRET_KEY', async () => {
    const running = run('main.js', { ...base, KLING_ACCESS_KEY: 'ak' });
    const { code } = await exitWithin(running, 10_000);
    expect(code).toBe(1);
    expect(running.stderr()).toMatch(/Invalid configuration/);
    expect(running.stderr()).toMatch(/KLING_SECRET_KEY/);
    // The secret half of nothing is printed: only the variable name.
    expect(running.stdout()).toBe('');
  });

  test('when several values are bad, then every one is named at once', async () => {
    const running = run('main.js', { ...base, PORT: '70000', REDIS_URL: 'http://127.0.0.1:6379', ALLOW_PRIVATE_CALLBACKS: 'maybe' });
    const { code } = await exitWithin(running, 10_000);
    expect(code).toBe(1);
    for (const name of ['PORT', 'REDIS_URL', 'ALLOW_PRIVATE_CALLBACKS']) expect(running.stderr()).toContain(name);
  });
});

describe('npm start (node dist/src/main.js) on a brand-new database, no Kling credentials', () => {
  const dbName = `ket_test_proc_${process.pid}_${randomBytes(4).toString('hex')}`;
  const dbUrl = (() => {
    const url = new URL(ADMIN_DATABASE_URL);
    url.pathname = `/${dbName}`;
    return url.toString();
  })();
  const queuePrefix = uniqueQueuePrefix();
  let running: Running | undefined;

  afterAll(async () => {
    if (running && running.child.exitCode === null && running.child.signalCode === null) {
      running.child.kill('SIGKILL');
      await running.exit;
    }
    const admin = new Client({ connectionString: ADMIN_DATABASE_URL });
    await admin.connect();
    try {
      await admin.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
    } finally {
      await admin.end();
    }
    const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    try {
      const keys = await redis.keys(`{${queuePrefix}}:*`);
      if (keys.length) await redis.del(...keys);
    } finally {
      redis.disconnect();
    }
  });

  test('when started with PORT=0, then it creates and migrates the database, says SANDBOX MODE, serves /healthz, runs a task to succeed, collects its garbage once quiet, and exits 0 on SIGTERM', async () => {
    const admin = new Client({ connectionString: ADMIN_DATABASE_URL });
    await admin.connect();
    try {
      const existing = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [dbName]);
      expect(existing.rowCount).toBe(0);
    } finally {
      await admin.end();
    }
    // The task below names placeholder image URLs, as the README's curl session does (and says to start so).
    const env = { PORT: '0', DATABASE_URL: dbUrl, REDIS_URL, QUEUE_PREFIX: queuePrefix, SANDBOX_STEP_DELAY_MS: '50', MEDIA_PRECHECK: 'off', IDLE_GC_AFTER_MS: String(IDLE_GC_AFTER_MS) };
    running = run('main.js', env);
    const proc = running;

    const listening = await waitFor(() => {
      if (proc.child.exitCode !== null) throw new Error(`main.js exited ${proc.child.exitCode}: ${proc.stderr()}`);
      return proc.logs.find((line) => /API listening/.test(line.msg) && typeof line.url === 'string');
    }, 'the "API listening" log line');
    const baseUrl = listening.url as string;
    expect(baseUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(baseUrl).not.toMatch(/:0$/);

    // Migrations were applied automatically, to a database that did not exist.
    const migrated = proc.logs.find((line) => line.msg === 'database migrated');
    expect(migrated?.migrations).toEqual(loadMigrations().map((m) => m.name));
    const db = new Client({ connectionString: dbUrl });
    await db.connect();
    try {
      const rows = await db.query<{ migration_name: string }>('SELECT migration_name FROM "_prisma_migrations" WHERE finished_at IS NOT NULL ORDER BY migration_name');
      expect(rows.rows.map((r) => r.migration_name)).toEqual(loadMigrations().map((m) => m.name));
    } finally {
      await db.end();
    }

    const sandbox = proc.logs.find((line) => /SANDBOX MODE/.test(line.msg));
    expect(sandbox).toBeDefined();
    expect(sandbox!.level).toBeGreaterThanOrEqual(40);

    expect((await fetch(`${baseUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${baseUrl}/readyz`)).status).toBe(200);

    // The whole path works out of the box: a key from the CLI, a task through the built-in simulator.
    const cli = run('cli/main.js', { DATABASE_URL: dbUrl }, ['keys', 'create', '--tenant', 'process-test']);
    expect((await exitWithin(cli, 15_000)).code).toBe(0);
    const { api_key: apiKey } = JSON.parse(cli.stdout());
    const created = await fetch(`${baseUrl}/v1/tasks`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify(validImageTask()),
    });
    expect(created.status).toBe(202);
    const { task_id: taskId } = (await created.json()) as { task_id: string };
    const done = await waitFor(async () => {
      const task = (await (await fetch(`${baseUrl}/v1/tasks/${taskId}`, { headers: { authorization: `Bearer ${apiKey}` } })).json()) as {
        status: string;
        result: { elements: { element_id: string }[] } | null;
      };
      return ['succeed', 'failed'].includes(task.status) ? task : undefined;
    }, `task ${taskId} to finish`);
    expect(done.status).toBe('succeed');
    expect(done.result?.elements[0]?.element_id).toMatch(/^\d+$/);

    // A busy spell (requests from 20 connections), then quiet: the idle collections due run (the first
    // one always: src/idle-memory.ts), and the metrics say so (the bench waits on them before measuring).
    const scrape = async () => (await fetch(`${baseUrl}/metrics`)).text();
    const busyUntil = Date.now() + 1_500;
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        while (Date.now() < busyUntil) await (await fetch(`${baseUrl}/healthz`)).arrayBuffer();
      }),
    );
    let quiet: string | undefined;
    for (const deadline = Date.now() + 30_000; !quiet && Date.now() < deadline; ) {
      // Seldom: a scrape is work too, and frequent ones would keep the process from counting as quiet.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const text = await scrape();
      if (sample(text, 'kling_tracker_idle_collections_due') === 0 && sample(text, 'kling_tracker_idle_collection_seconds_count') >= 1) quiet = text;
    }
    expect(quiet).toBeDefined();
    expect(sample(quiet!, 'kling_tracker_idle_collection_seconds_sum')).toBeGreaterThan(0);

    const stoppedAt = Date.now();
    proc.child.kill('SIGTERM');
    const { code, signal } = await exitWithin(proc, 5_000);
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(Date.now() - stoppedAt).toBeLessThan(5_000);
    expect(proc.logs.some((line) => line.msg === 'shutting down')).toBe(true);
  });
});
