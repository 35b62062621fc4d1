import { performance } from 'node:perf_hooks';
import { createHttpSender } from './http-sender';

/**
 * A small HTTP load generator with keep-alive sockets (http-sender.ts): `connections` sockets,
 * exact per-request latencies (no histogram bucketing), and three shapes of load:
 * - closedLoop: each connection sends its next request as soon as the previous answer is read (peak);
 * - fixedRate: requests scheduled at a constant rate, latency counted from the scheduled moment, so a
 *   stalled server is not hidden by the generator waiting for it (no coordinated omission);
 * - fixedCount: `count` requests as fast as `connections` allow (the burst).
 */

export interface LoadTarget {
  /** Base URL, e.g. http://127.0.0.1:3000 */
  baseUrl: string;
  path: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
}

export interface LoadResult {
  requests: number;
  /** Answers outside 2xx plus requests that failed at the socket. */
  errors: number;
  statuses: Record<string, number>;
  elapsedS: number;
  rps: number;
  latency: LatencySummary;
  /** Raw latencies in ms, kept so that rounds can be merged exactly. */
  samples: number[];
  /** First few error descriptions. */
  errorExamples: string[];
  /** The Location header of each 2xx answer (fixedCount only). */
  locations?: string[];
  /** fixedRate only: latency by the second each request was due, to tell a steady tail from a spell. */
  perSecond?: SecondSummary[];
}

/** Latencies of the requests due within one second of a fixed-rate run. */
export interface SecondSummary {
  second: number;
  count: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
}

export interface LatencySummary {
  count: number;
  mean_ms: number;
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  max_ms: number;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export function summarize(samples: number[]): LatencySummary {
  const sorted = Float64Array.from(samples).sort();
  let sum = 0;
  for (const value of sorted) sum += value;
  const round = (value: number) => Math.round(value * 100) / 100;
  return {
    count: sorted.length,
    mean_ms: round(sorted.length ? sum / sorted.length : Number.NaN),
    p50_ms: round(percentile(sorted, 50)),
    p90_ms: round(percentile(sorted, 90)),
    p99_ms: round(percentile(sorted, 99)),
    max_ms: round(sorted.length ? sorted[sorted.length - 1]! : Number.NaN),
  };
}

/** Merges results of the same target (A/B rounds) into one: total requests over total time, all samples. */
export function mergeResults(results: LoadResult[]): LoadResult {
  const samples = results.flatMap((r) => r.samples);
  const statuses: Record<string, number> = {};
  for (const r of results) for (const [status, n] of Object.entries(r.statuses)) statuses[status] = (statuses[status] ?? 0) + n;
  const requests = results.reduce((n, r) => n + r.requests, 0);
  const elapsedS = results.reduce((n, r) => n + r.elapsedS, 0);
  return {
    requests,
    errors: results.reduce((n, r) => n + r.errors, 0),
    statuses,
    elapsedS,
    rps: elapsedS > 0 ? requests / elapsedS : 0,
    latency: summarize(samples),
    samples,
    errorExamples: results.flatMap((r) => r.errorExamples).slice(0, 5),
  };
}

class Recorder {
  requests = 0;
  errors = 0;
  statuses: Record<string, number> = {};
  samples: number[] = [];
  /** Per sample, the second of the run it was due in (fixedRate only). */
  dueSeconds: number[] | undefined;
  errorExamples: string[] = [];
  locations: string[] | undefined;

  constructor(keepLocations = false) {
    if (keepLocations) this.locations = [];
  }

  ok(status: number, latencyMs: number, location: string | undefined): void {
    this.requests++;
    this.statuses[status] = (this.statuses[status] ?? 0) + 1;
    this.samples.push(latencyMs);
    if (status < 200 || status > 299) {
      this.errors++;
      if (this.errorExamples.length < 5) this.errorExamples.push(`HTTP ${status}`);
    } else if (this.locations && location) {
      this.locations.push(location);
    }
  }

  failed(error: Error, latencyMs: number): void {
    this.requests++;
    this.errors++;
    this.statuses.error = (this.statuses.error ?? 0) + 1;
    this.samples.push(latencyMs);
    if (this.errorExamples.length < 5) this.errorExamples.push(error.message);
  }

  /** The latencies grouped by the second their requests were due in. */
  perSecond(): SecondSummary[] | undefined {
    if (!this.dueSeconds) return undefined;
    const bySecond: number[][] = [];
    this.dueSeconds.forEach((second, i) => (bySecond[second] ??= []).push(this.samples[i]!));
    return Array.from(bySecond, (samples, second) => {
      const { count, p50_ms, p99_ms, max_ms } = summarize(samples ?? []);
      return { second, count, p50_ms, p99_ms, max_ms };
    });
  }

  result(elapsedS: number): LoadResult {
    const perSecond = this.perSecond();
    return {
      requests: this.requests,
      errors: this.errors,
      statuses: this.statuses,
      elapsedS,
      rps: elapsedS > 0 ? this.requests / elapsedS : 0,
      latency: summarize(this.samples),
      samples: this.samples,
      errorExamples: this.errorExamples,
      ...(this.locations ? { locations: this.locations } : {}),
      ...(perSecond ? { perSecond } : {}),
    };
  }
}

/** The target's request, sent over `connections` kept-alive sockets (see http-sender.ts). */
function sender(target: LoadTarget, connections: number) {
  const url = new URL(target.baseUrl);
  return createHttpSender(
    {
      host: url.hostname,
      port: Number(url.port),
      method: target.method ?? 'POST',
      path: target.path,
      headers: target.headers ?? {},
      ...(target.body === undefined ? {} : { body: Buffer.from(target.body) }),
    },
    connections,
  );
}

export interface RunControl {
  /** Called about every 250 ms with requests done so far. */
  onProgress?: (done: number, elapsedS: number) => void;
}

function progressTimer(recorder: Recorder, started: number, control: RunControl): NodeJS.Timeout | undefined {
  if (!control.onProgress) return undefined;
  return setInterval(() => control.onProgress!(recorder.requests, (performance.now() - started) / 1000), 250);
}

/**
 * Sends one request and records its answer (or failure) with the latency since `from`; false when it
 * failed. `dueSecond`, for fixed-rate runs, is recorded beside the latency.
 */
function sendAndRecord(send: () => Promise<{ status: number; location: string | undefined }>, recorder: Recorder, from: number, dueSecond?: number): Promise<boolean> {
  const record = () => {
    if (dueSecond !== undefined) recorder.dueSeconds?.push(dueSecond);
  };
  return send().then(
    ({ status, location }) => {
      record();
      recorder.ok(status, performance.now() - from, location);
      return true;
    },
    (error: Error) => {
      record();
      recorder.failed(error, performance.now() - from);
      return false;
    },
  );
}

/** The parts every load shape shares: the sockets, the clock, the progress line, and the result at the end. */
function startRun(target: LoadTarget, connections: number, recorder: Recorder, control: RunControl) {
  const { send, close } = sender(target, connections);
  const started = performance.now();
  const timer = progressTimer(recorder, started, control);
  return {
    send,
    started,
    finish(): LoadResult {
      const elapsedS = (performance.now() - started) / 1000;
      if (timer) clearInterval(timer);
      close();
      return recorder.result(elapsedS);
    },
  };
}

/** `connections` loops, each sending its next request when the previous one is answered, for `durationS`. */
export async function closedLoop(target: LoadTarget, opts: { connections: number; durationS: number } & RunControl): Promise<LoadResult> {
  const recorder = new Recorder();
  const run = startRun(target, opts.connections, recorder, opts);
  const deadline = run.started + opts.durationS * 1000;
  const loop = async () => {
    while (performance.now() < deadline) {
      if (!(await sendAndRecord(run.send, recorder, performance.now()))) await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };
  await Promise.all(Array.from({ length: opts.connections }, loop));
  return run.finish();
}

/** `count` requests over `connections` loops, as fast as they are answered; keeps each 2xx's Location. */
export async function fixedCount(target: LoadTarget, opts: { connections: number; count: number } & RunControl): Promise<LoadResult> {
  const recorder = new Recorder(true);
  const run = startRun(target, opts.connections, recorder, opts);
  let issued = 0;
  const loop = async () => {
    while (issued < opts.count) {
      issued++;
      await sendAndRecord(run.send, recorder, performance.now());
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.connections, opts.count) }, loop));
  return run.finish();
}

/**
 * Requests at `rate` per second for `durationS` over at most `connections` sockets (requests wait for a
 * free socket, as a client's would). Latency runs from the moment a request was due, not sent.
 */
export async function fixedRate(
  target: LoadTarget,
  opts: { connections: number; rate: number; durationS: number; keepLocations?: boolean } & RunControl,
): Promise<LoadResult> {
  const recorder = new Recorder(opts.keepLocations);
  recorder.dueSeconds = [];
  const run = startRun(target, opts.connections, recorder, opts);
  const { started } = run;
  const total = Math.max(1, Math.round(opts.rate * opts.durationS));
  const intervalMs = 1000 / opts.rate;
  const inFlight = new Set<Promise<boolean>>();
  let next = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (next < total && started + next * intervalMs <= now) {
        const due = started + next * intervalMs;
        next++;
        const p = sendAndRecord(run.send, recorder, due, Math.floor((due - started) / 1000));
        inFlight.add(p);
        void p.finally(() => inFlight.delete(p));
      }
      if (next >= total) resolve();
      else setTimeout(tick, Math.max(0, Math.min(1, started + next * intervalMs - performance.now())));
    };
    tick();
  });
  await Promise.all(inFlight);
  return run.finish();
}
