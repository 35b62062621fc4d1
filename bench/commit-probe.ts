import { performance } from 'node:perf_hooks';
import type { Client } from 'pg';
import { summarize, type LatencySummary } from './load';

/**
 * Times a lone Postgres commit every `everyMs` while a measured run goes on: one INSERT of a tiny row
 * on its own connection, so each answer waits for its WAL flush as every create's does. Both servers
 * commit through the same Postgres and disk, so a spell here is the machine's, not either server's: on
 * some runs ours and the floor both had p99s of 40–50 ms a second every ~3 s while no process's event
 * loop was late (bench/README.md, fifteenth session); if the disk is the cause, commits show it.
 */
export interface CommitProbe {
  /** Stops probing and summarises the round trips since it started (ms); rejects if a probe failed. */
  stop(): Promise<LatencySummary>;
}

const PROBE_TABLE = 'bench_commit_probe';
/** How often a lone commit is timed (ms). */
export const COMMIT_PROBE_EVERY_MS = 20;

/** Creates the probe's table; call once, before any measured run (DDL during one would disturb it). */
export async function prepareCommitProbe(client: Client): Promise<void> {
  await client.query(`CREATE TABLE IF NOT EXISTS ${PROBE_TABLE} (at timestamptz NOT NULL DEFAULT now())`);
}

export function startCommitProbe(client: Client, everyMs = COMMIT_PROBE_EVERY_MS): CommitProbe {
  const samples: number[] = [];
  let stopped = false;
  let failure: unknown;
  const loop = (async () => {
    while (!stopped) {
      const started = performance.now();
      await client.query(`INSERT INTO ${PROBE_TABLE} DEFAULT VALUES`);
      const elapsed = performance.now() - started;
      samples.push(elapsed);
      // A fixed pace from each start, so a slow commit is followed at once rather than skipped.
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, everyMs - elapsed)));
    }
  })().catch((error: unknown) => {
    // Kept for stop(): a rejection nobody awaits yet would end the whole bench process on the spot.
    failure = error;
  });
  return {
    async stop() {
      stopped = true;
      await loop;
      if (failure) throw failure;
      return summarize(samples);
    },
  };
}
