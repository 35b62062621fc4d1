import { startTestService, TEST_KLING_API_KEY, type TestService } from '../helpers/test-service';
import { uniqueExternalId, validImageTask } from '../helpers/factories';
import { pngBase64 } from '../helpers/media';

describe('submit → worker → Kling → callback → query', () => {
  let service: TestService;
  let auth: string;

  beforeAll(async () => {
    service = await startTestService();
    ({ auth } = await service.createTenant());
  });
  afterAll(() => service.stop());

  test('when a task is submitted, then it reaches succeed with the element, visible by task id and by external id', async () => {
    const externalId = uniqueExternalId();
    const created = await service.http.post('/v1/tasks').set('authorization', auth).send(validImageTask({ external_task_id: externalId }));
    expect(created.status).toBe(202);
    expect(created.headers.location).toBe(`/v1/tasks/${created.body.task_id}`);
    expect(created.body.status).toBe('queued');

    await service.waitForTask(created.body.task_id, (task) => task.status === 'succeed');

    const byId = await service.http.get(`/v1/tasks/${created.body.task_id}`).set('authorization', auth);
    expect(byId.status).toBe(200);
    expect(byId.body).toMatchObject({
      task_id: created.body.task_id,
      external_task_id: externalId,
      status: 'succeed',
      attempts: 1,
      error: null,
      result: { elements: [{ element_id: '987654321987654321' }] },
    });
    expect(byId.body.upstream_task_id).toBe(service.fake!.taskByExternalId(created.body.task_id)!.task_id);
    expect(byId.body.completed_at).not.toBeNull();
    const byExternal = await service.http.get(`/v1/tasks/by-external-id/${externalId}`).set('authorization', auth);
    expect(byExternal.status).toBe(200);
    expect(byExternal.body.task_id).toBe(created.body.task_id);
  });

  test('when the worker submits, then Kling gets the element fields, our task id as external_task_id, a per-task callback URL and the bearer key', async () => {
    const body = validImageTask({ external_task_id: uniqueExternalId(), callback_url: 'https://client.example.com/hook', tag_list: [{ tag_id: 'o_102' }] });
    const created = await service.http.post('/v1/tasks').set('authorization', auth).send(body);
    await service.waitForTask(created.body.task_id, (task) => task.status === 'succeed');

    const sent = service.fake!.creates().filter((r) => r.body.external_task_id === created.body.task_id);
    expect(sent).toHaveLength(1);
    const request = sent[0]!;
    expect(request.headers.authorization).toBe(`Bearer ${TEST_KLING_API_KEY}`);
    expect(request.body).toMatchObject({
      element_name: body.element_name,
      element_description: body.element_description,
      reference_type: 'image_refer',
      element_image_list: body.element_image_list,
      tag_list: [{ tag_id: 'o_102' }],
      external_task_id: created.body.task_id,
    });
    expect(request.body.callback_url).toMatch(new RegExp(`^${service.baseUrl}/webhooks/kling/${created.body.task_id}\\?token=[A-Za-z0-9_-]{43}$`));
    expect(request.body.callback_url).not.toContain('client.example.com');
  });

  test('when a task finishes, then its timeline shows created, submitted and both callbacks in order', async () => {
    const created = await service.http.post('/v1/tasks').set('authorization', auth).send(validImageTask());
    await service.waitForTask(created.body.task_id, (task) => task.status === 'succeed');

    const events = await service.http.get(`/v1/tasks/${created.body.task_id}/events`).set('authorization', auth);
    expect(events.status).toBe(200);
    expect(events.body.data.map((e: { type: string; status: string }) => `${e.type}:${e.status}`)).toEqual([
      'created:queued',
      'submitted:submitted',
      'callback:processing',
      'callback:succeed',
    ]);
  });

  test('when images are sent as base64, then Kling gets them in full but the task shows only their size and digest', async () => {
    const frontal = pngBase64('frontal');
    const bytes = Buffer.from(frontal, 'base64').length;
    const created = await service.http
      .post('/v1/tasks')
      .set('authorization', auth)
      .send(validImageTask({ element_image_list: { frontal_image: `data:image/png;base64,${frontal}`, refer_images: [{ image_url: 'https://media.example.com/side.png' }] } }));
    await service.waitForTask(created.body.task_id, (task) => task.status === 'succeed');

    const sent = service.fake!.creates().find((r) => r.body.external_task_id === created.body.task_id)!;
    expect(sent.body.element_image_list.frontal_image).toBe(frontal);
    const view = await service.http.get(`/v1/tasks/${created.body.task_id}`).set('authorization', auth);
    expect(view.body.request.element_image_list).toEqual({
      frontal_image: expect.stringMatching(new RegExp(`^base64 image \\(${bytes} bytes, sha256 [0-9a-f]{16}\\)$`)),
      refer_images: [{ image_url: 'https://media.example.com/side.png' }],
    });
    expect(JSON.stringify(view.body)).not.toContain(frontal.slice(0, 40));
  });
});
