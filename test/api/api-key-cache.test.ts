import { runCli } from '../helpers/cli';
import { startTestService, type TestService } from '../helpers/test-service';

describe('API key lookups are cached, and revocation still applies at once', () => {
  let service: TestService;

  beforeAll(async () => {
    // A long cache, so only the announced revocation can explain a key stopping within the test.
    service = await startTestService({ workers: false, env: { API_KEY_CACHE_TTL_MS: '600000' } });
  });
  afterAll(() => service.stop());

  const list = (auth: string) => service.http.get('/v1/tasks').set('authorization', auth);

  test('when a key is revoked with the CLI, then every API process stops accepting it at once, cached or not', async () => {
    const tenant = await service.createTenant();
    expect((await list(tenant.auth)).status).toBe(200);

    const revoked = await runCli(
      { DATABASE_URL: service.db.url, REDIS_URL: service.runtime.config.redisUrl, QUEUE_PREFIX: service.runtime.config.queuePrefix },
      'keys',
      'revoke',
      tenant.apiKeyId,
    );
    expect(revoked.code).toBe(0);
    expect(revoked.stderr).toBe('');

    const deadline = Date.now() + 5_000;
    let status = (await list(tenant.auth)).status;
    while (status === 200 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      status = (await list(tenant.auth)).status;
    }
    expect(status).toBe(401);
  });

  test('when a key is revoked behind the service\'s back (no announcement), then the cache answers for it until it expires', async () => {
    const tenant = await service.createTenant();
    expect((await list(tenant.auth)).status).toBe(200);

    await service.runtime.tenants.revokeApiKey(tenant.apiKeyId);

    expect((await list(tenant.auth)).status).toBe(200);
    expect(await service.runtime.tenants.authenticate(tenant.apiKey)).toBeNull();
  });

  test('when a key was never valid, then it is refused every time (unknown keys are not cached)', async () => {
    for (let i = 0; i < 3; i++) expect((await list('Bearer ket_unknown-key-000000000000000000')).status).toBe(401);
  });
});

describe('with API_KEY_CACHE_TTL_MS=0', () => {
  let service: TestService;

  beforeAll(async () => {
    service = await startTestService({ workers: false, env: { API_KEY_CACHE_TTL_MS: '0' } });
  });
  afterAll(() => service.stop());

  test('when a key is revoked in the database, then the next request is refused', async () => {
    const tenant = await service.createTenant();
    expect((await service.http.get('/v1/tasks').set('authorization', tenant.auth)).status).toBe(200);

    await service.runtime.tenants.revokeApiKey(tenant.apiKeyId);

    expect((await service.http.get('/v1/tasks').set('authorization', tenant.auth)).status).toBe(401);
  });
});
