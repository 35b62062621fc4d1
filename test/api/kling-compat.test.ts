import supertest, { type Response } from 'supertest';
import { Client } from 'pg';
import { createApp } from '../../src/api/app';
import type { TenantRepository } from '../../src/db/tenant-repository';
import { IMAGE_A, IMAGE_B, uniqueExternalId, validImageTask, validVideoTask } from '../helpers/factories';
import { waitUntil } from '../helpers/fault-utils';
import { startTestService, type TestService } from '../helpers/test-service';

/**
 * The Kling-compatible surface (CONTRACT.md): a client written for Kling's element API changes only its
 * base URL. Everything goes through real HTTP; answers are checked against Kling's envelope.
 */

const ELEMENTS = '/kling/v1/general/advanced-custom-elements';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The body of the curl example in Kling's documentation (shared/seed/kling-subject-new-version-api.txt),
 * verbatim: `//` comment lines, a trailing comma once they are gone, and a refer image equal to the
 * frontal image.
 */
const SEED_CURL_BODY = `{
"element_name": "bodyysh11112311213",
"element_description": "test",
"reference_type": "image_refer",
"element_image_list": {
"frontal_image": "https://imageproxy.zhongzhuan.chat/api/proxy/image/bb9bd34363da4fa486c9e645a6b1349e.png",
"refer_images": [
{
"image_url": "https://imageproxy.zhongzhuan.chat/api/proxy/image/bb9bd34363da4fa486c9e645a6b1349e.png"
}
]
},
// "element_video_list": {
// "refer_videos": [
// {
// "video_url": "xxx"
// }
// ]
// },
// "element_voice_id": string,
// "tag_list": [
// {
// "tag_id": "xxx"
// }
// ],
// "callback_url": "xxx",
// "external_task_id": ""
}`;
const imageList = (frontal: string, ...refers: string[]) => ({ frontal_image: frontal, refer_images: refers.map((image_url) => ({ image_url })) });

const SEED_IMAGE = 'https://imageproxy.zhongzhuan.chat/api/proxy/image/bb9bd34363da4fa486c9e645a6b1349e.png';

/** The seed example with its commented-out callback_url and external_task_id lines filled in, as a client would. */
const seedBodyWith = (callbackUrl: string, externalTaskId: string): string =>
  SEED_CURL_BODY.replace('// "callback_url": "xxx",', `"callback_url": "${callbackUrl}",`).replace(
    '// "external_task_id": ""',
    `"external_task_id": "${externalTaskId}"`,
  );

function expectKlingSuccess(response: Response): void {
  expect({ status: response.status, body: response.body }).toMatchObject({ status: 200, body: { code: 0, message: 'SUCCEED' } });
  expect(response.headers['content-type']).toMatch(/^application\/json/);
  expect(response.body.request_id).toMatch(UUID);
}

/** Kling's error envelope, exactly `{ code, message, request_id }`. */
function expectKlingError(response: Response, status: number, code: number, message?: RegExp): void {
  expect({ status: response.status, code: response.body.code }).toEqual({ status, code });
  expect(response.headers['content-type']).toMatch(/^application\/json/);
  expect(Object.keys(response.body).sort()).toEqual(['code', 'message', 'request_id']);
  expect(response.body.request_id).toMatch(UUID);
  expect(response.body.message).toEqual(expect.any(String));
  if (message) expect(response.body.message).toMatch(message);
}

/** A Kling task object as the query API documents it, with millisecond timestamps from around now. */
function expectKlingTask(data: Record<string, unknown>): void {
  expect(Object.keys(data).sort()).toEqual(['created_at', 'task_id', 'task_info', 'task_result', 'task_status', 'task_status_msg', 'updated_at']);
  expect(data.task_id).toMatch(/^tsk_/);
  for (const field of ['created_at', 'updated_at'] as const) {
    expect(Number.isInteger(data[field])).toBe(true);
    expect(Math.abs((data[field] as number) - Date.now())).toBeLessThan(10 * 60_000);
  }
}

describe('Kling-compatible surface, end to end (workers and fake Kling)', () => {
  let service: TestService;
  let auth: string;

  beforeAll(async () => {
    service = await startTestService();
    ({ auth } = await service.createTenant());
  });
  afterAll(() => service.stop());

  const post = (body: string, authorization = auth) =>
    service.http.post(ELEMENTS).set('authorization', authorization).set('content-type', 'application/json').send(body);

  test("when Kling's own curl example is sent with only the host and key changed, then code 0 with our task id, and the task succeeds and reads back in Kling's shape", async () => {
    const created = await post(SEED_CURL_BODY);

    expectKlingSuccess(created);
    expectKlingTask(created.body.data);
    expect(created.body.data).toMatchObject({ task_status: 'submitted', task_status_msg: '', task_info: {}, task_result: {} });
    const taskId: string = created.body.data.task_id;
    const row = await service.waitForTask(taskId, (task) => task.status === 'succeed');
    const sent = service.fake!.creates().filter((r) => r.body.external_task_id === taskId);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.body.element_image_list).toEqual({ frontal_image: SEED_IMAGE, refer_images: [{ image_url: SEED_IMAGE }] });

    const read = await service.http.get(`${ELEMENTS}/${taskId}`).set('authorization', auth);

    expectKlingSuccess(read);
    expectKlingTask(read.body.data);
    expect(read.body.data).toEqual({
      task_id: taskId,
      task_status: 'succeed',
      task_status_msg: '',
      task_info: {},
      task_result: { elements: [expect.objectContaining({ element_id: '987654321987654321', element_name: 'bodyysh11112311213' })] },
      created_at: row.createdAt.getTime(),
      updated_at: row.updatedAt.getTime(),
    });
    expect(read.body.request_id).not.toBe(created.body.request_id);
  });

  test('when the example carries external_task_id and callback_url, then the task reads back by external id and the callback_url is stored as the client\'s, never sent upstream', async () => {
    const externalId = uniqueExternalId('kling');
    const created = await post(seedBodyWith('https://client.example.com/kling-hook', externalId));
    expectKlingSuccess(created);
    expect(created.body.data.task_info).toEqual({ external_task_id: externalId });
    const taskId: string = created.body.data.task_id;
    const row = await service.waitForTask(taskId, (task) => task.status === 'succeed');

    const byExternal = await service.http.get(`${ELEMENTS}/${encodeURIComponent(externalId)}`).set('authorization', auth);

    expectKlingSuccess(byExternal);
    expect(byExternal.body.data).toMatchObject({ task_id: taskId, task_status: 'succeed', task_info: { external_task_id: externalId } });
    expect(row).toMatchObject({ callbackUrl: 'https://client.example.com/kling-hook', callbackFormat: 'kling' });
    const sent = service.fake!.creates().find((r) => r.body.external_task_id === taskId)!;
    expect(sent.body.callback_url).toMatch(new RegExp(`^${service.baseUrl}/webhooks/kling/${taskId}\\?token=`));
    const viaV1 = await service.http.get(`/v1/tasks/${taskId}`).set('authorization', auth);
    expect(viaV1.body).toMatchObject({ task_id: taskId, external_task_id: externalId, request: { callback_url: 'https://client.example.com/kling-hook' } });
  });

  test('when a tenant lists with pageNum and pageSize, then pages hold its tasks newest first and a page past the end is empty', async () => {
    const tenant = await service.createTenant();
    const ids: string[] = [];
    for (const name of ['first', 'second', 'third']) {
      const created = await post(JSON.stringify(validImageTask({ element_name: name })), tenant.auth);
      expectKlingSuccess(created);
      ids.push(created.body.data.task_id);
    }
    await Promise.all(ids.map((id) => service.waitForTask(id, (task) => task.status === 'succeed')));
    const list = (query: string) => service.http.get(`${ELEMENTS}${query}`).set('authorization', tenant.auth);
    const taskIds = (response: Response) => response.body.data.map((task: { task_id: string }) => task.task_id);

    const [page1, page2, page3, defaults] = await Promise.all([list('?pageNum=1&pageSize=2'), list('?pageNum=2&pageSize=2'), list('?pageNum=3&pageSize=2'), list('')]);

    for (const page of [page1, page2, page3, defaults]) expectKlingSuccess(page);
    expect(taskIds(page1)).toEqual([ids[2], ids[1]]);
    expect(taskIds(page2)).toEqual([ids[0]]);
    expect(page3.body.data).toEqual([]);
    expect(taskIds(defaults)).toEqual([ids[2], ids[1], ids[0]]);
    for (const task of defaults.body.data) {
      expectKlingTask(task);
      expect(task).toMatchObject({ task_status: 'succeed', task_result: { elements: [expect.objectContaining({ element_id: expect.any(String) })] } });
    }
  });

  test('when an external_task_id is used a second time, then 400/1201 "already exists" and no second task is stored', async () => {
    const tenant = await service.createTenant();
    const body = JSON.stringify(validImageTask({ external_task_id: uniqueExternalId('dup') }));
    const first = await post(body, tenant.auth);
    expectKlingSuccess(first);

    const second = await post(body, tenant.auth);

    expectKlingError(second, 400, 1201, /already exists/);
    expect(second.body.message).toContain(first.body.data.task_id);
    expect(await service.runtime.db.task.count({ where: { id: { not: first.body.data.task_id }, externalTaskId: JSON.parse(body).external_task_id } })).toBe(0);
  });

  test('when Kling rejects the element, then the task reads as "failed" with the reason in task_status_msg and code 0', async () => {
    // Earlier tests' tasks may still be on their way to Kling: the scripted answer is for the next create
    // Kling receives, so let those arrive first.
    await waitUntil(async () => (await service.runtime.db.task.count({ where: { status: 'queued' } })) === 0, 'earlier tasks to reach Kling', { timeoutMs: 10_000 });
    service.fake!.scriptCreate({ status: 400, body: { code: 1201, message: 'Image pixel is invalid', request_id: 'fake' } });
    const created = await post(JSON.stringify(validImageTask()));
    expectKlingSuccess(created);
    await service.waitForTask(created.body.data.task_id, (task) => task.status === 'failed');

    const read = await service.http.get(`${ELEMENTS}/${created.body.data.task_id}`).set('authorization', auth);

    expectKlingSuccess(read);
    expect(read.body.data).toMatchObject({ task_status: 'failed', task_status_msg: expect.stringContaining('Image pixel is invalid'), task_result: {} });
  });
});

describe('Kling-compatible surface, requests and errors (workers off)', () => {
  let service: TestService;
  let tenant: Awaited<ReturnType<TestService['createTenant']>>;
  let tenantId: string;

  beforeAll(async () => {
    service = await startTestService({ workers: false });
    tenant = await service.createTenant();
    tenantId = (await service.runtime.tenants.authenticate(tenant.apiKey))!.tenantId;
  });
  afterAll(() => service.stop());

  const post = (body: string, contentType = 'application/json') =>
    service.http.post(ELEMENTS).set('authorization', tenant.auth).set('content-type', contentType).send(body);
  const stored = () => service.runtime.db.task.count({ where: { tenantId } });

  async function expectRejectedBody(body: string, status: number, code: number, message: RegExp): Promise<void> {
    await service.runtime.enqueuer.drain(); // jobs of creates answered earlier are queued just after their answers
    const before = { stored: await stored(), queued: await service.runtime.queues.submit.count() };
    const response = await post(body);
    expectKlingError(response, status, code, message);
    expect({ stored: await stored(), queued: await service.runtime.queues.submit.count() }).toEqual(before);
  }

  describe('authentication', () => {
    test('when the Authorization header is missing, then 401/1001', async () => {
      const response = await service.http.post(ELEMENTS).set('content-type', 'application/json').send(SEED_CURL_BODY);

      expectKlingError(response, 401, 1001, /Authorization is empty/);
    });

    test.each([
      ['an unknown key', 'Bearer ket_not-a-real-key'],
      ['not a Bearer token', `Basic ${Buffer.from('a:b').toString('base64')}`],
    ])('when the Authorization header holds %s, then 401/1002', async (_label, header) => {
      const response = await service.http.get(ELEMENTS).set('authorization', header);

      expectKlingError(response, 401, 1002, /Authorization is invalid/);
    });

    test('when the key has been revoked, then 401/1002', async () => {
      const revoked = await service.createTenant();
      await service.runtime.tenants.revokeApiKey(revoked.apiKeyId);

      const response = await service.http.get(`${ELEMENTS}/tsk_anything`).set('authorization', revoked.auth);

      expectKlingError(response, 401, 1002);
    });
  });

  describe('validation: every failure is Kling\'s 400/1201 naming the field, and stores nothing', () => {
    const refer = (n: number) => `https://media.example.com/refer-${n}.png`;

    test.each<[string, unknown, RegExp]>([
      ['element_name over 20 characters', validImageTask({ element_name: 'n'.repeat(21) }), /element_name: must not exceed 20 characters/],
      ['element_name missing', validImageTask({ element_name: undefined }), /element_name: is required/],
      ['element_name blank', validImageTask({ element_name: '  ' }), /element_name: must not be empty/],
      ['element_description over 100 characters', validImageTask({ element_description: 'd'.repeat(101) }), /element_description: must not exceed 100/],
      ['reference_type unknown', validImageTask({ reference_type: 'text_refer' }), /reference_type: must be "image_refer" or "video_refer"/],
      ['image_refer without element_image_list', validImageTask({ element_image_list: undefined }), /element_image_list: is required/],
      ['no refer images', validImageTask({ element_image_list: imageList(IMAGE_A) }), /element_image_list\.refer_images: must contain at least 1/],
      ['4 refer images', validImageTask({ element_image_list: imageList(IMAGE_A, refer(1), refer(2), refer(3), refer(4)) }), /element_image_list\.refer_images: must contain at most 3/],
      ['an ftp frontal image', validImageTask({ element_image_list: imageList('ftp://media.example.com/a.png', IMAGE_B) }), /element_image_list\.frontal_image: .*http\(s\) URL/],
      ['a GIF as base64', validImageTask({ element_image_list: imageList(IMAGE_A, Buffer.from('GIF89a-no').toString('base64')) }), /element_image_list\.refer_images\.0\.image_url: .*\.png/],
      ['element_video_list with image_refer', validImageTask({ element_video_list: { refer_videos: [{ video_url: 'https://media.example.com/v.mp4' }] } }), /element_video_list: is invalid/],
      ['video_refer without element_video_list', validVideoTask({ element_video_list: undefined }), /element_video_list: is required/],
      ['two videos', validVideoTask({ element_video_list: { refer_videos: [{ video_url: 'https://a.example.com/1.mp4' }, { video_url: 'https://a.example.com/2.mp4' }] } }), /element_video_list\.refer_videos: must contain exactly 1/],
      ['element_voice_id with image_refer', validImageTask({ element_voice_id: 'voice-1' }), /element_voice_id: is only supported/],
      ['an unknown tag id', validImageTask({ tag_list: [{ tag_id: 'o_109' }] }), /tag_list\.0\.tag_id: must be one of o_101/],
      ['callback_url not http(s)', validImageTask({ callback_url: 'ftp://client.example.com/hook' }), /callback_url: must be an http\(s\) URL/],
      ['external_task_id over 128 characters', validImageTask({ external_task_id: 'x'.repeat(129) }), /external_task_id: must not exceed 128/],
      ['an unknown top-level field', validImageTask({ model_name: 'kling-v3' }), /model_name: is not a known field/],
      ['a JSON array', [validImageTask()], /expected object/i],
      ['a bare JSON string', 'Hero', /expected object/i],
    ])('when the body has %s, then 400/1201 naming it', async (_label, body, message) => {
      await expectRejectedBody(JSON.stringify(body), 400, 1201, message);
    });

    test('when several fields are wrong, then one 1201 message names each of them', async () => {
      const body = validImageTask({ element_name: 'n'.repeat(21), element_description: 'd'.repeat(101), tag_list: [{ tag_id: 'o_109' }] });

      await expectRejectedBody(JSON.stringify(body), 400, 1201, /element_name: .*element_description: .*tag_list\.0\.tag_id: /);
    });
  });

  describe('what the surface accepts', () => {
    test('when a refer image equals the frontal image (as in Kling\'s example), then it is accepted here while /v1 still refuses it', async () => {
      const body = validImageTask({ element_image_list: imageList(IMAGE_A, IMAGE_A) });

      const kling = await post(JSON.stringify(body));
      const v1 = await service.http.post('/v1/tasks').set('authorization', tenant.auth).send(body);

      expectKlingSuccess(kling);
      expect(v1.status).toBe(400);
      expect(v1.body.errors).toEqual([{ path: 'element_image_list.refer_images.0.image_url', message: 'must differ from frontal_image' }]);
    });

    test('when the body has // and /* */ comments and trailing commas, then it is accepted and stored as the plain fields', async () => {
      const body = `/* a Kling client's template */
{
  "element_name": "Commented", // trailing comment
  "element_description": "with /* not a comment */ inside a string",
  "reference_type": "image_refer",
  "element_image_list": { "frontal_image": "${IMAGE_A}", "refer_images": [{ "image_url": "${IMAGE_B}" },], },
  "tag_list": [{ "tag_id": "o_102" },],
}`;

      const response = await post(body);

      expectKlingSuccess(response);
      const row = await service.runtime.tasks.findById(response.body.data.task_id);
      expect(row!.request).toEqual({
        element_name: 'Commented',
        element_description: 'with /* not a comment */ inside a string',
        reference_type: 'image_refer',
        element_image_list: { frontal_image: IMAGE_A, refer_images: [{ image_url: IMAGE_B }] },
        tag_list: [{ tag_id: 'o_102' }],
      });
    });

    test.each([
      ['application/x-www-form-urlencoded (what curl -d sends without a Content-Type header)', 'application/x-www-form-urlencoded'],
      ['text/plain', 'text/plain'],
    ])('when the JSON comes as %s, then it is accepted (Kling documents Content-Type as optional)', async (_label, contentType) => {
      expectKlingSuccess(await post(JSON.stringify(validImageTask()), contentType));
    });

    test('when the JSON comes without any Content-Type header, then it is accepted', async () => {
      // A byte body makes fetch send no Content-Type at all.
      const response = await fetch(`${service.baseUrl}${ELEMENTS}`, {
        method: 'POST',
        headers: { authorization: tenant.auth },
        body: new TextEncoder().encode(JSON.stringify(validImageTask())),
      });

      expect({ status: response.status, body: await response.json() }).toMatchObject({ status: 200, body: { code: 0, data: { task_status: 'submitted' } } });
    });

    test('when a body uses "__proto__" as a key, then it is refused as an unknown field rather than becoming the prototype', async () => {
      const body = `{ "__proto__": { "element_name": "Sneaky" }, "element_description": "x", "reference_type": "image_refer",
        "element_image_list": { "frontal_image": "${IMAGE_A}", "refer_images": [{ "image_url": "${IMAGE_B}" }] } }`;

      await expectRejectedBody(body, 400, 1201, /__proto__: is not a known field/);
    });

    test('when a task is still queued or was canceled, then Kling reads it as "submitted" or as "failed" saying canceled', async () => {
      const queued = await post(JSON.stringify(validImageTask()));
      const canceled = await post(JSON.stringify(validImageTask()));
      expect((await service.http.post(`/v1/tasks/${canceled.body.data.task_id}/cancel`).set('authorization', tenant.auth)).status).toBe(200);

      const [readQueued, readCanceled] = await Promise.all(
        [queued, canceled].map((created) => service.http.get(`${ELEMENTS}/${created.body.data.task_id}`).set('authorization', tenant.auth)),
      );

      expect(readQueued!.body.data).toMatchObject({ task_status: 'submitted', task_status_msg: '', task_result: {} });
      expect(readCanceled!.body.data).toMatchObject({ task_status: 'failed', task_status_msg: expect.stringMatching(/cancel/), task_result: {} });
    });
  });

  describe('malformed JSON is 400/1200 and stores nothing', () => {
    test.each([
      ['truncated JSON', '{"element_name": "Hero",'],
      ['single-quoted keys', "{'element_name': 'Hero'}"],
      ['a doubled comma', '{"element_name": "Hero",,}'],
      ['two documents', '{"element_name": "Hero"}{"element_name": "Again"}'],
      ['an unterminated comment', '{"element_name": "Hero" /* never closed'],
      ['form fields', 'element_name=Hero&reference_type=image_refer'],
      ['an empty body', ''],
    ])('when the body is %s, then 400/1200', async (_label, body) => {
      await expectRejectedBody(body, 400, 1200, /not valid JSON|empty/);
    });
  });

  describe('reading and listing', () => {
    test('when a task id or external id does not exist for this key, then 404/1203', async () => {
      const other = await service.createTenant();
      const othersTask = await service.http
        .post(ELEMENTS)
        .set('authorization', other.auth)
        .set('content-type', 'application/json')
        .send(JSON.stringify(validImageTask({ external_task_id: uniqueExternalId('other') })));
      expectKlingSuccess(othersTask);

      for (const id of ['tsk_01JUNKNOWN0000000000000000', 'no-such-external-id', othersTask.body.data.task_id, othersTask.body.data.task_info.external_task_id]) {
        const response = await service.http.get(`${ELEMENTS}/${id}`).set('authorization', tenant.auth);
        expectKlingError(response, 404, 1203);
      }
    });

    test.each([
      ['pageNum=0', /pageNum: must be at least 1/],
      ['pageNum=1001', /pageNum: must be at most 1000/],
      ['pageSize=0', /pageSize: must be at least 1/],
      ['pageSize=501', /pageSize: must be at most 500/],
      ['pageSize=ten', /pageSize: must be a number/],
      ['pageNum=1.5', /pageNum: must be an integer/],
      ['status=succeed', /status: is not a known field/],
    ])('when the list query has %s, then 400/1201 naming it', async (query, message) => {
      const response = await service.http.get(`${ELEMENTS}?${query}`).set('authorization', tenant.auth);

      expectKlingError(response, 400, 1201, message);
    });

    test('when the range limits are used exactly (pageNum=1000, pageSize=500), then an empty page', async () => {
      const response = await service.http.get(`${ELEMENTS}?pageNum=1000&pageSize=500`).set('authorization', tenant.auth);

      expectKlingSuccess(response);
      expect(response.body.data).toEqual([]);
    });

    test('when a path or method Kling does not have under /kling is called, then 404/1202', async () => {
      expectKlingError(await service.http.get('/kling/v1/videos/text2video').set('authorization', tenant.auth), 404, 1202);
      expectKlingError(await service.http.post(`${ELEMENTS}/tsk_x`).set('authorization', tenant.auth).send({}), 404, 1202);
    });
  });

  describe('server-side failures', () => {
    /** The real app with a tenant store that fails as told: the Kling router must map what reaches it. */
    function appWithFailingAuth(error: Error) {
      const tenants = { ...service.runtime.tenants, authenticate: async () => Promise.reject(error) } as TenantRepository;
      return supertest(
        createApp({ ...service.runtime, tenants, apiKeys: tenants, allowPrivateCallbacks: true, readinessChecks: {}, sseHeartbeatMs: 15_000, fairShare: true, maxConcurrentCreates: 16, callbackTargetMs: 20 }),
      );
    }

    test('when the database refuses connections, then 503/5001 with Retry-After', async () => {
      const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });

      const response = await appWithFailingAuth(refused).get(ELEMENTS).set('authorization', tenant.auth);

      expectKlingError(response, 503, 5001);
      expect(response.headers['retry-after']).toBe('5');
    });

    test('when something unexpected breaks, then 500/5000 without the internal message', async () => {
      const response = await appWithFailingAuth(new Error('secret internal detail')).get(ELEMENTS).set('authorization', tenant.auth);

      expectKlingError(response, 500, 5000);
      expect(response.body.message).not.toContain('secret internal detail');
    });
  });
});

describe("Kling-compatible creates share /v1's create admission (API_MAX_CONCURRENT_CREATES=1, workers off)", () => {
  let service: TestService;
  let tenant: Awaited<ReturnType<TestService['createTenant']>>;

  beforeAll(async () => {
    service = await startTestService({ workers: false, env: { API_MAX_CONCURRENT_CREATES: '1' } });
    tenant = await service.createTenant();
  });
  afterAll(() => service.stop());

  test('when a /v1 create holds the only place, then a Kling-compatible create waits for it before it reaches Postgres, and both are stored once it goes', async () => {
    const locker = new Client({ connectionString: service.db.url });
    // Outside the locker's transaction: pg_stat_activity is read once per transaction.
    const observer = new Client({ connectionString: service.db.url });
    await Promise.all([locker.connect(), observer.connect()]);
    try {
      // Inserts into tasks wait on this lock: the /v1 create holds its place for as long as the test keeps it.
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE tasks IN SHARE ROW EXCLUSIVE MODE');
      const statementsWaitingOnTheLock = async (): Promise<number> => {
        const { rows } = await observer.query<{ n: string }>(
          "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND wait_event_type = 'Lock'",
        );
        return Number(rows[0]!.n);
      };
      const v1 = service.http.post('/v1/tasks').set('authorization', tenant.auth).send(validImageTask({ external_task_id: uniqueExternalId() })).then((response) => response);
      await waitUntil(async () => (await statementsWaitingOnTheLock()) === 1, 'the /v1 create to wait on the lock');

      const kling = service.http
        .post(ELEMENTS)
        .set('authorization', tenant.auth)
        .set('content-type', 'application/json')
        .send(JSON.stringify(validImageTask({ external_task_id: uniqueExternalId() })))
        .then((response) => response);
      await new Promise((resolve) => setTimeout(resolve, 300));

      expect(await statementsWaitingOnTheLock()).toBe(1);
      await locker.query('COMMIT');
      const [fromV1, fromKling] = await Promise.all([v1, kling]);
      expect(fromV1.status).toBe(202);
      expect(fromKling.status).toBe(200);
      expect(fromKling.body).toMatchObject({ code: 0, data: { task_id: expect.any(String) } });
      expect(await service.runtime.tasks.findById(fromKling.body.data.task_id)).not.toBeNull();
    } finally {
      await Promise.all([locker.end(), observer.end()]);
    }
  });
});
