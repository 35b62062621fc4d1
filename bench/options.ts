import path from 'node:path';
import { projectRoot } from '../src/db/project-root';

/**
 * Bench settings: environment variables (BENCH_*) or the same names as flags (`--burst=500`,
 * `--duration 5`, `--quick`). Flags win over the environment; `--quick` / BENCH_QUICK=1 shrinks every
 * size for a smoke run, and explicit values still win over it.
 */
export interface BenchOptions {
  quick: boolean;
  /** Which parts run: `submit` (1, 2 and half-peak), `burst` (3 and 4), `sse` (live-stream fan-out, issue #9). */
  phases: { submit: boolean; burst: boolean; sse: boolean };
  /** SSE fan-out: streams held open at once, over this many tasks. */
  sseStreams: number;
  sseTasks: number;
  /** Connections of the fixed-concurrency submit load (same for ours and the floor). */
  connections: number;
  /** Warm-up per target before measuring, seconds. */
  warmupS: number;
  /** One measured slice per target and round, seconds; rounds alternate A/B and B/A. */
  durationS: number;
  rounds: number;
  /** Length of the half-peak fixed-rate run per target, seconds. */
  halfDurationS: number;
  /** The "half peak" run at this fixed rate (req/s) for ours and the floor alike instead of half of each one's peak (0). */
  halfRate: number;
  /** Tasks submitted in the end-to-end burst, and over how many connections. */
  burst: number;
  burstConnections: number;
  /** Tasks sent through the whole pipeline (and thrown away) before the burst, so "before" is a warm process. */
  burstWarmup: number;
  /** Burst submitted at this fixed rate (tasks/s) instead of as fast as the API accepts them (0). */
  burstRate: number;
  /** Give up on the burst after this long (the run then reports what was missing). */
  burstTimeoutS: number;
  /** Wait after the burst before the "after" RSS sample (lets the processes go idle and collect). */
  settleS: number;
  /** Fake Kling: delay before each callback (0 = at once after answering the create). */
  callbackDelayMs: number;
  /** The burst's tasks carry a client callback_url (the fake Kling answers it): status webhooks are delivered too. */
  clientWebhooks: boolean;
  /** KLING_CONCURRENCY of the worker (jobs and upstream requests in flight). */
  klingConcurrency: number;
  /** DATABASE_POOL_SIZE of API, worker and floor; undefined = the service's default. */
  poolSize: number | undefined;
  /** API_PROCESSES of the API (node:cluster processes on one port). */
  apiProcesses: number;
  /** Extra environment for the API and worker (`BENCH_SERVICE_ENV="A=1,B=2"`). */
  serviceEnv: Record<string, string>;
  logLevel: string;
  /** Start API and worker with --cpu-prof; profiles land in this directory. */
  cpuProfDir: string | undefined;
  resultsDir: string;
  adminDatabaseUrl: string;
  redisUrl: string;
  keepDatabase: boolean;
  /** Keep the service logs (API, worker, floor, fake Kling) after a successful run too. */
  keepLogs: boolean;
  /** Extra node flags for the API and worker (`--node-args="--trace-gc --max-semi-space-size=32"`). */
  nodeArgs: string[];
}

export const ROOT = projectRoot(__dirname);

const QUICK_DEFAULTS = {
  connections: 8,
  warmupS: 0.5,
  durationS: 1,
  rounds: 1,
  halfDurationS: 1,
  burst: 200,
  settleS: 1,
};

const FULL_DEFAULTS = {
  connections: 32,
  warmupS: 5,
  durationS: 10,
  rounds: 3,
  halfDurationS: 10,
  burst: 10_000,
  settleS: 30,
};

function parseArgv(argv: string[]): Record<string, string> {
  const flags: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new Error(`Unexpected argument ${JSON.stringify(arg)} (flags look like --burst=500)`);
    const body = arg.slice(2);
    const eq = body.indexOf('=');
    if (eq >= 0) {
      flags[body.slice(0, eq)] = body.slice(eq + 1);
    } else if (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--')) {
      flags[body] = argv[++i]!;
    } else {
      flags[body] = 'true';
    }
  }
  return flags;
}

/** `burst-connections` ↔ BENCH_BURST_CONNECTIONS. */
const envName = (flag: string): string => `BENCH_${flag.toUpperCase().replace(/-/g, '_')}`;

export function parseOptions(argv = process.argv.slice(2), env = process.env): BenchOptions {
  const flags = parseArgv(argv);
  const known = new Set([
    'sse-streams', 'sse-tasks', 'quick', 'phases', 'connections', 'warmup-s', 'duration-s', 'rounds', 'half-duration-s', 'half-rate', 'burst', 'burst-connections', 'burst-warmup', 'burst-rate',
    'burst-timeout-s', 'settle-s', 'callback-delay-ms', 'client-webhooks', 'kling-concurrency', 'pool-size', 'api-processes', 'service-env', 'log-level',
    'cpu-prof', 'node-args', 'results-dir', 'database-admin-url', 'redis-url', 'keep-database', 'keep-logs', 'help',
  ]);
  for (const flag of Object.keys(flags)) {
    if (!known.has(flag)) throw new Error(`Unknown flag --${flag}; known: ${[...known].map((f) => `--${f}`).join(' ')}`);
  }
  if (flags.help) {
    console.log(`npm run bench -- [--quick] ${[...known].filter((f) => f !== 'help' && f !== 'quick').map((f) => `[--${f}=…]`).join(' ')}\nEach flag can also be given as ${envName('flag-name')} (see bench/README.md).`);
    process.exit(0);
  }
  const raw = (flag: string): string | undefined => {
    const value = flags[flag] ?? env[envName(flag)];
    return value === '' ? undefined : value;
  };
  const bool = (flag: string): boolean => ['1', 'true', 'yes', 'on'].includes((raw(flag) ?? '').toLowerCase());
  const quick = bool('quick');
  const defaults = quick ? QUICK_DEFAULTS : FULL_DEFAULTS;
  const num = (flag: string, fallback: number, { integer = false, min = 0 } = {}): number => {
    const value = raw(flag);
    if (value === undefined) return fallback;
    const parsed = Number(value);
    if (!Number.isFinite(parsed) || parsed < min || (integer && !Number.isInteger(parsed))) {
      throw new Error(`--${flag} / ${envName(flag)} must be ${integer ? 'an integer' : 'a number'} ≥ ${min}, got ${JSON.stringify(value)}`);
    }
    return parsed;
  };
  const phaseList = (raw('phases') ?? 'submit,burst,sse').split(',').map((p) => p.trim());
  for (const phase of phaseList) if (!['submit', 'burst', 'sse'].includes(phase)) throw new Error(`--phases takes submit, burst and/or sse, got ${phase}`);
  const serviceEnv = Object.fromEntries(
    (raw('service-env') ?? '')
      .split(',')
      .filter(Boolean)
      .map((pair) => {
        const eq = pair.indexOf('=');
        if (eq <= 0) throw new Error(`--service-env takes NAME=value pairs separated by commas, got ${JSON.stringify(pair)}`);
        return [pair.slice(0, eq), pair.slice(eq + 1)];
      }),
  );
  const cpuProf = raw('cpu-prof');
  const poolSize = raw('pool-size') === undefined ? undefined : num('pool-size', 10, { integer: true, min: 1 });
  return {
    quick,
    phases: { submit: phaseList.includes('submit'), burst: phaseList.includes('burst'), sse: phaseList.includes('sse') },
    sseStreams: num('sse-streams', quick ? 50 : 1_000, { integer: true, min: 1 }),
    sseTasks: num('sse-tasks', quick ? 5 : 100, { integer: true, min: 1 }),
    connections: num('connections', defaults.connections, { integer: true, min: 1 }),
    warmupS: num('warmup-s', defaults.warmupS),
    durationS: num('duration-s', defaults.durationS, { min: 0.1 }),
    rounds: num('rounds', defaults.rounds, { integer: true, min: 1 }),
    halfDurationS: num('half-duration-s', defaults.halfDurationS, { min: 0.1 }),
    halfRate: num('half-rate', 0),
    burst: num('burst', defaults.burst, { integer: true, min: 1 }),
    burstConnections: num('burst-connections', num('connections', defaults.connections, { integer: true, min: 1 }), { integer: true, min: 1 }),
    burstWarmup: num('burst-warmup', Math.min(1_000, Math.ceil(num('burst', defaults.burst, { integer: true, min: 1 }) / 10)), { integer: true }),
    burstRate: num('burst-rate', 0),
    burstTimeoutS: num('burst-timeout-s', quick ? 60 : 600, { min: 1 }),
    settleS: num('settle-s', defaults.settleS),
    callbackDelayMs: num('callback-delay-ms', 0, { integer: true }),
    clientWebhooks: bool('client-webhooks'),
    klingConcurrency: num('kling-concurrency', 32, { integer: true, min: 1 }),
    poolSize,
    apiProcesses: num('api-processes', 1, { integer: true, min: 1 }),
    serviceEnv,
    logLevel: raw('log-level') ?? 'info',
    cpuProfDir: cpuProf === undefined ? undefined : path.resolve(['1', 'true', 'yes', 'on'].includes(cpuProf) ? path.join(ROOT, 'bench', 'profiles') : cpuProf),
    resultsDir: path.resolve(raw('results-dir') ?? path.join(ROOT, 'bench', 'results')),
    adminDatabaseUrl: raw('database-admin-url') ?? process.env.TEST_DATABASE_ADMIN_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres',
    redisUrl: raw('redis-url') ?? process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
    keepDatabase: bool('keep-database'),
    keepLogs: bool('keep-logs'),
    nodeArgs: (raw('node-args') ?? '').split(/\s+/).filter(Boolean),
  };
}
