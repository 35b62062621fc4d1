import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import { loadMigrations, migrate, type Migration } from '../../src/db/migrate';
import { createDb } from '../../src/db/prisma';
import { ADMIN_DATABASE_URL, createTestDatabase, type TestDatabase } from '../helpers/test-database';

const MIGRATIONS_DIR = path.join(__dirname, '..', '..', 'prisma', 'migrations');
const SCHEMA_FILE = path.join(__dirname, '..', '..', 'prisma', 'schema.prisma');

/** Names databases this file creates, so each test gets a fresh one and afterAll drops them all. */
const created: string[] = [];
function freshDatabaseUrl(): string {
  const name = `ket_test_migrate_${process.pid}_${randomBytes(4).toString('hex')}`;
  created.push(name);
  const url = new URL(ADMIN_DATABASE_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

async function withClient<T>(url: string, use: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

const databaseExists = (name: string): Promise<boolean> =>
  withClient(ADMIN_DATABASE_URL, async (admin) => (await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1);

const appliedRows = (url: string) =>
  withClient(url, async (client) =>
    (await client.query<{ migration_name: string; checksum: string; finished_at: Date | null; rolled_back_at: Date | null }>(
      'SELECT migration_name, checksum, finished_at, rolled_back_at FROM "_prisma_migrations" ORDER BY migration_name',
    )).rows,
  );

/** Migration names and the sha256 of each file, computed here independently of the runner. */
const migrationFiles = readdirSync(MIGRATIONS_DIR, { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .map((entry) => entry.name)
  .sort()
  .map((name) => ({ name, checksum: createHash('sha256').update(readFileSync(path.join(MIGRATIONS_DIR, name, 'migration.sql'))).digest('hex') }));

afterAll(async () => {
  await withClient(ADMIN_DATABASE_URL, async (admin) => {
    for (const name of created) await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  });
});

describe('migrate()', () => {
  test('when the database does not exist, then it is created and every migration is applied in order', async () => {
    const url = freshDatabaseUrl();
    const name = new URL(url).pathname.slice(1);
    expect(await databaseExists(name)).toBe(false);

    const applied = await migrate(url);

    expect(await databaseExists(name)).toBe(true);
    expect(migrationFiles.length).toBeGreaterThan(0);
    expect(applied).toEqual(migrationFiles.map((m) => m.name));
  });

  test('when run again, then it applies nothing and changes nothing', async () => {
    const url = freshDatabaseUrl();
    await migrate(url);
    const before = await appliedRows(url);

    const applied = await migrate(url);

    expect(applied).toEqual([]);
    expect(await appliedRows(url)).toEqual(before);
  });

  test('when three processes migrate a new database at once, then all succeed and each migration is applied once', async () => {
    const url = freshDatabaseUrl();

    const results = await Promise.all([migrate(url), migrate(url), migrate(url)]);

    expect(results.flat().sort()).toEqual(migrationFiles.map((m) => m.name));
    const rows = await appliedRows(url);
    expect(rows.map((row) => row.migration_name)).toEqual(migrationFiles.map((m) => m.name));
  });

  test("when migrations are applied, then _prisma_migrations records each one as Prisma does: finished, with the file's sha256", async () => {
    const url = freshDatabaseUrl();

    await migrate(url);

    const rows = await appliedRows(url);
    expect(rows).toEqual(
      migrationFiles.map((file) => ({ migration_name: file.name, checksum: file.checksum, finished_at: expect.any(Date), rolled_back_at: null })),
    );
  });

  test('when an applied migration file was changed afterwards, then migrate refuses and applies nothing', async () => {
    const url = freshDatabaseUrl();
    await migrate(url);
    const before = await appliedRows(url);
    const edited = loadMigrations().map((m, i): Migration => {
      if (i !== 0) return m;
      const sql = `${m.sql}\n-- edited after release\n`;
      return { ...m, sql, checksum: createHash('sha256').update(sql).digest('hex') };
    });

    await expect(migrate(url, edited)).rejects.toThrow(/changed after it was applied/);

    expect(await appliedRows(url)).toEqual(before);
  });

  test('when a new migration is added, then only it is applied; when one fails, then it is rolled back and not recorded', async () => {
    const url = freshDatabaseUrl();
    await migrate(url);
    const added = (name: string, sql: string): Migration => ({ name, sql, checksum: createHash('sha256').update(sql).digest('hex') });
    const good = added('99990101000000_add_probe', 'CREATE TABLE "probe_ok" ("id" INTEGER);');
    const bad = added('99990102000000_broken', 'CREATE TABLE "probe_partial" ("id" INTEGER); SELECT no_such_function();');

    const applied = await migrate(url, [...loadMigrations(), good]);
    const failed = migrate(url, [...loadMigrations(), good, bad]);

    expect(applied).toEqual([good.name]);
    await expect(failed).rejects.toThrow(/99990102000000_broken failed/);
    const tables = await withClient(url, async (client) =>
      (await client.query<{ table_name: string }>("SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'probe_%'")).rows.map((r) => r.table_name),
    );
    expect(tables).toEqual(['probe_ok']);
    expect((await appliedRows(url)).map((row) => row.migration_name)).not.toContain(bad.name);
  });
});

interface RuntimeDataModel {
  models: Record<string, { dbName: string | null; fields: { name: string; kind: string; dbName?: string }[] }>;
}

/** Prisma 7's generated client carries the model-to-table mapping it queries with; this is what must exist. */
function clientDataModel(url: string): RuntimeDataModel {
  const db = createDb(url, 1);
  const model = (db as unknown as { _runtimeDataModel?: RuntimeDataModel })._runtimeDataModel;
  void db.$disconnect();
  if (!model || Object.keys(model.models).length === 0) throw new Error('the generated Prisma client no longer exposes _runtimeDataModel; read the mapping elsewhere');
  return model;
}

/** Parts of prisma/schema.prisma the client's data model leaves out: optional fields and enum values. */
function parseSchemaFile(): { optionalColumns: Set<string>; enums: Record<string, string[]> } {
  const schema = readFileSync(SCHEMA_FILE, 'utf8');
  const optionalColumns = new Set<string>();
  for (const [, body] of schema.matchAll(/^model\s+\w+\s*\{([^}]*)\}/gm)) {
    const table = /@@map\("([^"]+)"\)/.exec(body!)?.[1];
    for (const line of body!.split('\n')) {
      const field = /^\s*(\w+)\s+\w+\?(?:\s|$)(.*)$/.exec(line);
      if (field) optionalColumns.add(`${table}.${/@map\("([^"]+)"\)/.exec(field[2]!)?.[1] ?? field[1]}`);
    }
  }
  const enums: Record<string, string[]> = {};
  for (const [, name, body] of schema.matchAll(/^enum\s+(\w+)\s*\{([^}]*)\}/gm)) {
    const dbName = /@@map\("([^"]+)"\)/.exec(body!)?.[1] ?? name!;
    enums[dbName] = body!.split('\n').map((line) => line.trim()).filter((line) => /^\w+$/.test(line));
  }
  return { optionalColumns, enums };
}

describe('schema drift: prisma/schema.prisma against the migrated database', () => {
  let db: TestDatabase;
  let columns: { table_name: string; column_name: string; is_nullable: 'YES' | 'NO' }[];

  beforeAll(async () => {
    db = await createTestDatabase();
    columns = await withClient(db.url, async (client) =>
      (await client.query(
        `SELECT table_name, column_name, is_nullable FROM information_schema.columns
          WHERE table_schema = 'public' AND table_name <> '_prisma_migrations' ORDER BY table_name, column_name`,
      )).rows,
    );
  });
  afterAll(() => db.drop());

  test('when the migrations have run, then every model and field of the schema exists as a table and column, and no other column does', () => {
    const expected: Record<string, string[]> = {};
    for (const [name, model] of Object.entries(clientDataModel(db.url).models)) {
      expected[model.dbName ?? name] = model.fields
        .filter((field) => field.kind === 'scalar' || field.kind === 'enum')
        .map((field) => field.dbName ?? field.name)
        .sort();
    }
    const actual: Record<string, string[]> = {};
    for (const column of columns) (actual[column.table_name] ??= []).push(column.column_name);

    expect(actual).toEqual(expected);
  });

  test('when the migrations have run, then a column is nullable exactly when its schema field is optional', () => {
    const { optionalColumns } = parseSchemaFile();

    const nullable = columns.filter((c) => c.is_nullable === 'YES').map((c) => `${c.table_name}.${c.column_name}`).sort();

    expect(optionalColumns.size).toBeGreaterThan(0);
    expect(nullable).toEqual([...optionalColumns].sort());
  });

  test('when the migrations have run, then every enum of the schema exists with the same values in order', async () => {
    const { enums } = parseSchemaFile();

    const rows = await withClient(db.url, async (client) =>
      (await client.query<{ typname: string; labels: string[] }>(
        `SELECT t.typname, array_agg(e.enumlabel::text ORDER BY e.enumsortorder) AS labels
           FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid JOIN pg_namespace n ON n.oid = t.typnamespace
          WHERE n.nspname = 'public' GROUP BY t.typname`,
      )).rows,
    );

    expect(Object.keys(enums).length).toBeGreaterThan(0);
    expect(Object.fromEntries(rows.map((row) => [row.typname, row.labels]))).toEqual(enums);
  });
});
