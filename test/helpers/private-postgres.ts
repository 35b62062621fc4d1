import { execFile, execFileSync } from 'node:child_process';
import { appendFileSync, chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort, shellQuote, startReaper, type Reaper } from './fault-utils';

const execFileAsync = promisify(execFile);

/**
 * A throwaway PostgreSQL cluster of one test file's own: `initdb` into a temp dir and `pg_ctl start` on a
 * free loopback port (socket in the temp dir, fsync off, trust auth). Outage tests stop and restart it
 * without disturbing the machine's shared Postgres. As root, the binaries run as the `postgres` OS user
 * (initdb refuses root) and the temp dir is chowned to it.
 */
export interface PrivatePostgres {
  port: number;
  /** The `postgres` database, as superuser `postgres`. */
  adminUrl: string;
  urlFor(database: string): string;
  /** `pg_ctl stop`: 'fast' (default) ends sessions cleanly; 'immediate' is a crash (recovery on next start). */
  stop(options?: { mode?: 'fast' | 'immediate' }): Promise<void>;
  /** `pg_ctl start` on the same port and data; resolves when it accepts connections. No-op while running. */
  start(): Promise<void>;
  /** Stops it (immediate) and removes the temp dir. */
  destroy(): Promise<void>;
  running(): boolean;
  /** How long set-up took, in ms. */
  timings: { initdbMs: number; startMs: number };
  /** The server log, for failure messages. */
  log(): string;
}

/** The newest installed server's bin dir (/usr/lib/postgresql/<version>/bin); PG_BIN_DIR overrides it. */
export function postgresBinDir(): string {
  if (process.env.PG_BIN_DIR) return process.env.PG_BIN_DIR;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(path.join(root, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (!versions[0]) throw new Error(`No PostgreSQL server binaries under ${root}/*/bin (set PG_BIN_DIR)`);
  return path.join(root, versions[0], 'bin');
}

const isRoot = (): boolean => process.getuid?.() === 0;

function postgresIds(): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

/** Command and arguments that run `binary` as the postgres OS user when we are root. */
function asPostgres(binary: string, args: string[]): [string, string[]] {
  return isRoot() ? ['runuser', ['-u', 'postgres', '--', binary, ...args]] : [binary, args];
}

/** Backstop for a jest worker that dies without afterAll: pg_ctl daemonizes, so the cluster would outlive us. */
function reapCluster(binDir: string, dataDir: string, root: string): Reaper {
  const [cmd, args] = asPostgres(path.join(binDir, 'pg_ctl'), ['-D', dataDir, 'stop', '-m', 'immediate', '-w', '-t', '10']);
  return startReaper(`cd / && ${[cmd, ...args].map(shellQuote).join(' ')} >/dev/null 2>&1; rm -rf ${shellQuote(root)}`);
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const binDir = postgresBinDir();
  const root = mkdtempSync(path.join(tmpdir(), 'ket-pg-'));
  const dataDir = path.join(root, 'data');
  const logFile = path.join(root, 'postgres.log');
  if (isRoot()) {
    const { uid, gid } = postgresIds();
    chownSync(root, uid, gid);
  }
  chmodSync(root, 0o700);
  const reaper = reapCluster(binDir, dataDir, root);
  let running = false;

  async function run(binary: string, args: string[], timeoutMs = 60_000): Promise<string> {
    const [cmd, cmdArgs] = asPostgres(path.join(binDir, binary), args);
    try {
      const { stdout, stderr } = await execFileAsync(cmd, cmdArgs, { cwd: root, timeout: timeoutMs, encoding: 'utf8' });
      return stdout + stderr;
    } catch (error) {
      const e = error as { stdout?: string; stderr?: string; message: string };
      throw new Error(`${binary} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}\n${readLog()}`);
    }
  }

  const readLog = (): string => (existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-8_000) : '');

  const initStarted = Date.now();
  try {
    await run('initdb', ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync']);
  } catch (error) {
    rmSync(root, { recursive: true, force: true });
    reaper.disarm();
    throw error;
  }
  const initdbMs = Date.now() - initStarted;
  const settings = (port: number) =>
    [
      '',
      '# private test cluster (test/helpers/private-postgres.ts)',
      `port = ${port}`,
      "listen_addresses = '127.0.0.1'",
      `unix_socket_directories = '${root}'`,
      'fsync = off',
      'synchronous_commit = off',
      'full_page_writes = off',
      'shared_buffers = 32MB',
      'max_connections = 200',
      '',
    ].join('\n');

  async function pgCtlStart(): Promise<void> {
    await run('pg_ctl', ['-D', dataDir, '-l', logFile, '-w', '-t', '60', 'start']);
    running = true;
  }

  const startStarted = Date.now();
  let port = 0;
  // The free port may be taken between choosing and binding: try a few (the last `port =` line wins).
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    appendFileSync(path.join(dataDir, 'postgresql.conf'), settings(port));
    try {
      await pgCtlStart();
      break;
    } catch (error) {
      if (attempt >= 3 || !/could not bind|already in use/i.test((error as Error).message)) {
        rmSync(root, { recursive: true, force: true });
        reaper.disarm();
        throw error;
      }
    }
  }
  const startMs = Date.now() - startStarted;

  const urlFor = (database: string) => `postgresql://postgres@127.0.0.1:${port}/${encodeURIComponent(database)}`;

  return {
    port,
    adminUrl: urlFor('postgres'),
    urlFor,
    async stop({ mode = 'fast' } = {}) {
      if (!running) return;
      await run('pg_ctl', ['-D', dataDir, 'stop', '-m', mode, '-w', '-t', '60']);
      running = false;
    },
    async start() {
      if (running) return;
      await pgCtlStart();
    },
    async destroy() {
      if (running) await run('pg_ctl', ['-D', dataDir, 'stop', '-m', 'immediate', '-w', '-t', '60']).catch(() => undefined);
      running = false;
      rmSync(root, { recursive: true, force: true });
      reaper.disarm();
    },
    running: () => running,
    timings: { initdbMs, startMs },
    log: readLog,
  };
}
