import { PrismaPg } from '@prisma/adapter-pg';
import { Pool } from 'pg';
import { PrismaClient } from '../generated/prisma/client';

export type Db = PrismaClient;

const pools = new WeakMap<Db, Pool>();

const IDLE_CONNECTION_MS = 5 * 60_000;

/**
 * The client runs on the `pg` driver adapter, so no Prisma engine binary is needed at run time. The
 * adapter is given our own pg pool, so the hot paths (see task-repository) can send prepared SQL
 * straight to the same connections: `sqlPool(db)`. `$disconnect()` ends the pool.
 */
export function createDb(databaseUrl: string, poolSize: number): Db {
  // Idle connections are kept for minutes, not pg's default 10 s: after a short lull the next burst would
  // otherwise open every connection again and prepare every statement again on each (see sql.ts).
  const pool = new Pool({ connectionString: databaseUrl, max: poolSize, idleTimeoutMillis: IDLE_CONNECTION_MS });
  // An idle connection dropped by the server (Postgres restarting) is an 'error' event on the pool; pg
  // discards that connection and the next query opens a new one. Without a listener it would crash the
  // process before Prisma attaches its own (on its first query).
  pool.on('error', () => undefined);
  const db = new PrismaClient({ adapter: new PrismaPg(pool) });
  // Prisma does not end a pool it was given; we do, also when only sqlPool(db) ever used it.
  const disconnect = db.$disconnect.bind(db);
  db.$disconnect = async () => {
    await disconnect();
    if (!pool.ended) await pool.end();
  };
  pools.set(db, pool);
  return db;
}

/** The pg pool under a client made by createDb (the same connections Prisma uses). */
export function sqlPool(db: Db): Pool {
  const pool = pools.get(db);
  if (!pool) throw new Error('sqlPool: this Prisma client was not made by createDb');
  return pool;
}
