import type { Pool, PoolClient, QueryConfig } from 'pg';

/**
 * Hot-path SQL goes straight to pg (see prisma.ts `sqlPool`) as named prepared statements: Postgres
 * parses and plans each text once per connection, and no ORM query building runs per request. The
 * profile of `npm run bench` showed Prisma's query interpreter as the API's largest CPU cost.
 */

const names = new Map<string, string>();

/** A query under a stable name per distinct text (pg prepares it once per connection). */
export function prepared(text: string, values: unknown[]): QueryConfig {
  let name = names.get(text);
  if (!name) {
    name = `ket_${names.size + 1}`;
    names.set(text, name);
  }
  return { name, text, values };
}

/** Collects parameters while a statement is built: `sql.param(value)` returns `$n`. */
export class Params {
  readonly values: unknown[] = [];
  param(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

/** JSON for a jsonb parameter; pg would turn a JS array into a Postgres array, so never pass objects raw. */
export const jsonParam = (value: unknown): string | null => (value === undefined || value === null ? null : JSON.stringify(value));

/** Postgres unique_violation. */
export const isPgUniqueViolation = (error: unknown): boolean => (error as { code?: unknown } | null)?.code === '23505';

/**
 * Runs `work` in one transaction on one pooled connection. A connection whose ROLLBACK fails is
 * discarded rather than returned to the pool.
 */
export async function inTransaction<T>(pool: Pool, work: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    client.release();
    return result;
  } catch (error) {
    const rolledBack = await client.query('ROLLBACK').then(
      () => true,
      () => false,
    );
    client.release(rolledBack ? undefined : (error as Error));
    throw error;
  }
}
