import { startTestService, type TestService } from '../helpers/test-service';

const ADMIN_TOKEN = 'admin-token-0123456789abcdef';

describe('queue dashboard at /admin/queues', () => {
  describe('with ADMIN_TOKEN set', () => {
    let service: TestService;

    beforeAll(async () => {
      service = await startTestService({ workers: false, env: { ADMIN_TOKEN } });
    });
    afterAll(() => service.stop());

    test('when no token is sent, then 401 problem+json saying how to log in', async () => {
      const response = await service.http.get('/admin/queues');

      expect(response.status).toBe(401);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(response.headers['www-authenticate']).toMatch(/^Bearer/);
      expect(response.body).toMatchObject({ code: 'UNAUTHORIZED', detail: expect.stringContaining('?token=') });
    });

    test('when a wrong token is sent (header, query or cookie), then 401', async () => {
      expect((await service.http.get('/admin/queues').set('authorization', `Bearer ${ADMIN_TOKEN}x`)).status).toBe(401);
      expect((await service.http.get(`/admin/queues?token=${ADMIN_TOKEN.slice(1)}`)).status).toBe(401);
      expect((await service.http.get('/admin/queues').set('cookie', `ket_admin=${ADMIN_TOKEN}`)).status).toBe(401);
      expect((await service.http.get('/admin/queues/api/queues')).status).toBe(401);
    });

    test('when the bearer token is sent, then the dashboard and its API show all four queues', async () => {
      const page = await service.http.get('/admin/queues').set('authorization', `Bearer ${ADMIN_TOKEN}`);
      const api = await service.http.get('/admin/queues/api/queues').set('authorization', `Bearer ${ADMIN_TOKEN}`);

      expect(page.status).toBe(200);
      expect(page.headers['content-type']).toMatch(/^text\/html/);
      expect(api.status).toBe(200);
      expect(api.body.queues.map((queue: { name: string }) => queue.name).sort()).toEqual(['maintenance', 'notify-client', 'poll-task', 'submit-task']);
    });

    test('when a browser opens ?token= once, then it gets an HttpOnly cookie, is sent on without the token, and the cookie lets it in', async () => {
      const login = await service.http.get(`/admin/queues?token=${ADMIN_TOKEN}`);

      expect(login.status).toBe(303);
      expect(login.headers.location).toBe('/admin/queues');
      const setCookie = String(login.headers['set-cookie']);
      expect(setCookie).toMatch(/^ket_admin=[^;]+;/);
      expect(setCookie).toMatch(/HttpOnly/);
      expect(setCookie).toMatch(/SameSite=Strict/);
      expect(setCookie).not.toContain(ADMIN_TOKEN);

      const cookie = setCookie.split(';')[0]!;
      const page = await service.http.get('/admin/queues').set('cookie', cookie);
      expect(page.status).toBe(200);
    });
  });

  describe('without ADMIN_TOKEN', () => {
    let service: TestService;

    beforeAll(async () => {
      service = await startTestService({ workers: false });
    });
    afterAll(() => service.stop());

    test('when /admin/queues is requested, then the route does not exist (404)', async () => {
      const response = await service.http.get('/admin/queues').set('authorization', `Bearer ${ADMIN_TOKEN}`);

      expect(response.status).toBe(404);
      expect(response.body.code).toBe('ROUTE_NOT_FOUND');
    });
  });
});
