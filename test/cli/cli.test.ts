import { createHash } from 'node:crypto';
import { Client } from 'pg';
import { createDb, type Db } from '../../src/db/prisma';
import { createTenantRepository, type TenantRepository } from '../../src/db/tenant-repository';
import { runCli as runCliWith } from '../helpers/cli';
import { createTestDatabase, type TestDatabase } from '../helpers/test-database';

const runCli = (databaseUrl: string, ...args: string[]) => runCliWith({ DATABASE_URL: databaseUrl }, ...args);

/** Every row of every table in the database, as text: where a stored secret would show up. */
async function dumpAllRows(databaseUrl: string): Promise<string> {
  const client = new Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const tables = await client.query<{ table_name: string }>("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'");
    const dumps: string[] = [];
    for (const { table_name } of tables.rows) {
      const rows = await client.query(`SELECT t::text AS row FROM "${table_name}" t`);
      dumps.push(...rows.rows.map((r: { row: string }) => `${table_name}: ${r.row}`));
    }
    return dumps.join('\n');
  } finally {
    await client.end();
  }
}

describe('CLI: keys', () => {
  let database: TestDatabase;
  let db: Db;
  let tenants: TenantRepository;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDb(database.url, 2);
    tenants = createTenantRepository(db);
  });
  afterAll(async () => {
    await db.$disconnect();
    await database.drop();
  });

  test('when a key is created, then the CLI prints tenant, api_key and webhook_secret as JSON, and the key authenticates', async () => {
    const result = await runCli(database.url, 'keys', 'create', '--tenant', 'acme');

    expect(result.code).toBe(0);
    const output = JSON.parse(result.stdout);
    expect(output).toMatchObject({ tenant: 'acme', api_key: expect.any(String), webhook_secret: expect.stringMatching(/^whsec_/) });
    expect(output.api_key.length).toBeGreaterThanOrEqual(32);
    await expect(tenants.authenticate(output.api_key)).resolves.toMatchObject({ tenantName: 'acme' });
  });

  test('when a key is created, then the database holds only its hash, never the key', async () => {
    const { api_key: apiKey } = JSON.parse((await runCli(database.url, 'keys', 'create', '--tenant', 'hash-check')).stdout);

    const everything = await dumpAllRows(database.url);

    expect(everything).not.toContain(apiKey);
    expect(everything).toContain(createHash('sha256').update(apiKey).digest('hex'));
  });

  test('when a tenant gets a second key, then both keys work and the webhook secret stays the same', async () => {
    const first = JSON.parse((await runCli(database.url, 'keys', 'create', '--tenant', 'two-keys')).stdout);

    const second = JSON.parse((await runCli(database.url, 'keys', 'create', '--tenant', 'two-keys')).stdout);

    expect(second.api_key).not.toBe(first.api_key);
    expect(second.webhook_secret).toBe(first.webhook_secret);
    await expect(tenants.authenticate(first.api_key)).resolves.toMatchObject({ tenantName: 'two-keys' });
    await expect(tenants.authenticate(second.api_key)).resolves.toMatchObject({ tenantName: 'two-keys' });
  });

  test('when a tenant webhook secret is rotated, then the CLI prints a new whsec_ secret, stored for signing, and API keys keep working', async () => {
    const created = JSON.parse((await runCli(database.url, 'keys', 'create', '--tenant', 'rotating')).stdout);

    const result = await runCli(database.url, 'keys', 'rotate-secret', '--tenant', 'rotating');

    expect(result.code).toBe(0);
    const rotated = JSON.parse(result.stdout);
    expect(rotated).toEqual({ tenant: 'rotating', webhook_secret: expect.stringMatching(/^whsec_[A-Za-z0-9+/]{43}=$/) });
    expect(rotated.webhook_secret).not.toBe(created.webhook_secret);
    expect((await db.tenant.findUniqueOrThrow({ where: { name: 'rotating' } })).webhookSecret).toBe(rotated.webhook_secret);
    await expect(tenants.authenticate(created.api_key)).resolves.toMatchObject({ tenantName: 'rotating' });
  });

  test('when rotating the secret of an unknown tenant, then the CLI fails naming it', async () => {
    const result = await runCli(database.url, 'keys', 'rotate-secret', '--tenant', 'nobody-here');
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('nobody-here');
  });

  test('when keys are listed, then each shows its id and prefix but never the key', async () => {
    const created = JSON.parse((await runCli(database.url, 'keys', 'create', '--tenant', 'listed')).stdout);
    const other = JSON.parse((await runCli(database.url, 'keys', 'create', '--tenant', 'not-listed')).stdout);

    const result = await runCli(database.url, 'keys', 'list', '--tenant', 'listed');

    expect(result.code).toBe(0);
    const listing = JSON.parse(result.stdout);
    expect(listing.data).toEqual([
      { id: created.key_id, tenant: 'listed', prefix: created.api_key.slice(0, 10), created_at: expect.any(String), revoked_at: null },
    ]);
    expect(result.stdout).not.toContain(created.api_key);
    expect(result.stdout).not.toContain(created.webhook_secret);
    const all = await runCli(database.url, 'keys', 'list');
    expect(JSON.parse(all.stdout).data.map((key: { id: string }) => key.id)).toEqual(expect.arrayContaining([created.key_id, other.key_id]));
    expect(all.stdout).not.toContain(created.api_key);
    expect(all.stdout).not.toContain(other.api_key);
  });

  test('when a key is revoked, then it no longer authenticates, the listing says so, and revoking again fails', async () => {
    const created = JSON.parse((await runCli(database.url, 'keys', 'create', '--tenant', 'revoked')).stdout);

    const result = await runCli(database.url, 'keys', 'revoke', created.key_id);

    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ revoked: created.key_id });
    await expect(tenants.authenticate(created.api_key)).resolves.toBeNull();
    const listing = JSON.parse((await runCli(database.url, 'keys', 'list', '--tenant', 'revoked')).stdout);
    expect(listing.data[0].revoked_at).toEqual(expect.any(String));
    const again = await runCli(database.url, 'keys', 'revoke', created.key_id);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(created.key_id);
  });

  test.each([
    ['keys create without --tenant', ['keys', 'create']],
    ['--tenant without a value', ['keys', 'create', '--tenant']],
    ['a blank tenant name', ['keys', 'create', '--tenant', '  ']],
    ['a misspelt option', ['keys', 'create', '--tenatn', 'acme']],
    ['keys revoke without an id', ['keys', 'revoke']],
    ['an unknown command', ['tenants', 'create']],
    ['no command', []],
  ])('when the CLI gets %s, then it exits 2 with the usage on stderr and nothing on stdout', async (_label, args) => {
    const result = await runCli(database.url, ...args);

    expect(result.code).toBe(2);
    expect(result.stderr).toContain('Usage:');
    expect(result.stdout).toBe('');
  });
});
