import type { Response } from 'supertest';
import { startTestService, type TestService } from '../helpers/test-service';
import { IMAGE_A, IMAGE_B, uniqueExternalId, validImageTask, validVideoTask } from '../helpers/factories';
import { jpegBase64, pngBase64 } from '../helpers/media';

/**
 * Every validation rule of the seed and the contract ("Client API"), through real HTTP: each limit
 * passes exactly at the limit and fails just past it; every rejection is a problem+json naming the field
 * and stores, queues and sends nothing.
 */

type Body = Record<string, unknown>;

const TEN_MB = 10 * 1024 * 1024;

const imageList = (frontal: string, ...refers: string[]) => ({ frontal_image: frontal, refer_images: refers.map((image_url) => ({ image_url })) });
const videoList = (...urls: string[]) => ({ refer_videos: urls.map((video_url) => ({ video_url })) });
const referImage = (n: number) => `https://media.example.com/refer-${n}.png`;

function expectProblem(response: Response, status: number, code: string): void {
  expect({ status: response.status, body: response.body }).toMatchObject({ status, body: { status, code } });
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(response.body).toMatchObject({
    type: expect.stringMatching(new RegExp(`/${code.toLowerCase().replace(/_/g, '-')}$`)),
    title: expect.any(String),
    detail: expect.any(String),
  });
  expect(response.body.title).not.toBe('');
  expect(response.body.detail).not.toBe('');
}

describe('POST /v1/tasks validation (no workers)', () => {
  let service: TestService;
  let auth: string;
  let tenantId: string;

  beforeAll(async () => {
    service = await startTestService({ workers: false });
    const created = await service.createTenant();
    auth = created.auth;
    tenantId = (await service.runtime.tenants.authenticate(created.apiKey))!.tenantId;
  });
  afterAll(() => service.stop());

  const post = (body: unknown) => service.http.post('/v1/tasks').set('authorization', auth).send(body as object);

  async function state() {
    return {
      stored: await service.runtime.db.task.count({ where: { tenantId } }),
      sent: service.fake!.creates().length,
      queued: await service.runtime.queues.submit.count(),
    };
  }

  /** The request was refused before anything happened: no row, no job, no upstream call. */
  async function expectNothingHappened(before: Awaited<ReturnType<typeof state>>): Promise<void> {
    expect(await state()).toEqual({ stored: before.stored, sent: before.sent, queued: 0 });
  }

  /** 400 problem+json whose `errors` name `path` with a message matching `message`; nothing stored, queued or sent. */
  async function expectRejected(body: unknown, path: string, message: RegExp): Promise<Response> {
    const before = await state();
    const response = await post(body);
    expectProblem(response, 400, 'VALIDATION_FAILED');
    expect(response.body.errors).toEqual(expect.arrayContaining([{ path, message: expect.stringMatching(message) }]));
    await expectNothingHappened(before);
    return response;
  }

  /** 202 with the task stored and one submit job queued (the job is then drained so the next case starts from an empty queue). */
  async function expectAccepted(body: Body): Promise<Response> {
    const before = await state();
    const response = await post(body);
    expect({ status: response.status, body: response.body }).toMatchObject({ status: 202, body: { status: 'queued' } });
    await service.runtime.enqueuer.drain(); // the job is queued just after the answer
    expect(await state()).toEqual({ stored: before.stored + 1, sent: before.sent, queued: 1 });
    await service.runtime.queues.submit.drain(true);
    return response;
  }

  describe('element_name', () => {
    test('when element_name has exactly 20 characters, then the task is accepted', async () => {
      await expectAccepted(validImageTask({ element_name: 'n'.repeat(20) }));
    });

    test('when element_name has 21 characters, then 400 naming element_name', async () => {
      await expectRejected(validImageTask({ element_name: 'n'.repeat(21) }), 'element_name', /20 characters/);
    });

    test('when element_name is 20 emoji (40 UTF-16 units), then the task is accepted because characters are code points', async () => {
      await expectAccepted(validImageTask({ element_name: '😀'.repeat(20) }));
    });

    test('when element_name is 21 emoji, then 400 naming element_name', async () => {
      await expectRejected(validImageTask({ element_name: '😀'.repeat(21) }), 'element_name', /20 characters/);
    });

    test('when element_name is missing, then 400 saying it is required', async () => {
      await expectRejected(validImageTask({ element_name: undefined }), 'element_name', /required/);
    });

    test.each([
      ['empty', ''],
      ['blank', '   \t '],
    ])('when element_name is %s, then 400 saying it must not be empty', async (_label, value) => {
      await expectRejected(validImageTask({ element_name: value }), 'element_name', /must not be empty/);
    });

    test('when element_name is not a string, then 400 naming element_name', async () => {
      await expectRejected(validImageTask({ element_name: 42 }), 'element_name', /string/);
    });
  });

  describe('element_description', () => {
    test('when element_description has exactly 100 characters, then the task is accepted', async () => {
      await expectAccepted(validImageTask({ element_description: 'd'.repeat(100) }));
    });

    test('when element_description has 101 characters, then 400 naming element_description', async () => {
      await expectRejected(validImageTask({ element_description: 'd'.repeat(101) }), 'element_description', /100 characters/);
    });

    test('when element_description is missing, then 400 saying it is required', async () => {
      await expectRejected(validImageTask({ element_description: undefined }), 'element_description', /required/);
    });

    test('when element_description is blank, then 400 saying it must not be empty', async () => {
      await expectRejected(validImageTask({ element_description: '  ' }), 'element_description', /must not be empty/);
    });
  });

  describe('reference_type', () => {
    test('when reference_type is image_refer or video_refer, then the task is accepted', async () => {
      await expectAccepted(validImageTask({ reference_type: 'image_refer' }));
      await expectAccepted(validVideoTask({ reference_type: 'video_refer' }));
    });

    test('when reference_type is missing, then 400 saying it is required', async () => {
      await expectRejected(validImageTask({ reference_type: undefined }), 'reference_type', /required/);
    });

    test.each(['text_refer', 'IMAGE_REFER', ''])('when reference_type is %p, then 400 listing the allowed values', async (value) => {
      await expectRejected(validImageTask({ reference_type: value }), 'reference_type', /image_refer.*video_refer/);
    });
  });

  describe('element_image_list', () => {
    test('when reference_type is image_refer without element_image_list, then 400 saying it is required', async () => {
      await expectRejected(validImageTask({ element_image_list: undefined }), 'element_image_list', /required.*image_refer/);
    });

    test('when frontal_image is missing, then 400 saying it is required', async () => {
      await expectRejected(validImageTask({ element_image_list: { refer_images: [{ image_url: IMAGE_B }] } }), 'element_image_list.frontal_image', /required/);
    });

    test('when refer_images is missing, then 400 saying it is required', async () => {
      await expectRejected(validImageTask({ element_image_list: { frontal_image: IMAGE_A } }), 'element_image_list.refer_images', /required/);
    });

    test('when refer_images is empty, then 400 saying at least 1 is needed', async () => {
      await expectRejected(validImageTask({ element_image_list: imageList(IMAGE_A) }), 'element_image_list.refer_images', /at least 1/);
    });

    test('when refer_images has 1 image, then the task is accepted', async () => {
      await expectAccepted(validImageTask({ element_image_list: imageList(IMAGE_A, referImage(1)) }));
    });

    test('when refer_images has 3 images, then the task is accepted', async () => {
      await expectAccepted(validImageTask({ element_image_list: imageList(IMAGE_A, referImage(1), referImage(2), referImage(3)) }));
    });

    test('when refer_images has 4 images, then 400 saying at most 3', async () => {
      await expectRejected(
        validImageTask({ element_image_list: imageList(IMAGE_A, referImage(1), referImage(2), referImage(3), referImage(4)) }),
        'element_image_list.refer_images',
        /at most 3/,
      );
    });

    test('when a refer image equals the frontal image, then 400 naming that refer image', async () => {
      await expectRejected(validImageTask({ element_image_list: imageList(IMAGE_A, IMAGE_A) }), 'element_image_list.refer_images.0.image_url', /differ/);
    });

    test('when a refer image equals the frontal image except for a data: prefix, then 400 naming that refer image', async () => {
      const raw = pngBase64('same');
      await expectRejected(
        validImageTask({ element_image_list: imageList(`data:image/png;base64,${raw}`, raw) }),
        'element_image_list.refer_images.0.image_url',
        /differ/,
      );
    });

    test('when an unknown field is inside element_image_list, then 400 naming that field', async () => {
      await expectRejected(
        validImageTask({ element_image_list: { ...imageList(IMAGE_A, IMAGE_B), back_image: IMAGE_B } }),
        'element_image_list.back_image',
        /unknown|not a known|not allowed|unrecogni[sz]ed/i,
      );
    });
  });

  describe('image sources', () => {
    test.each([
      ['http URLs', 'http://media.example.com/a.jpg', 'http://media.example.com/b.jpeg'],
      ['https URLs', 'https://media.example.com/a.png', 'https://media.example.com/b.png'],
      ['raw base64', pngBase64('frontal'), jpegBase64('side')],
      ['data:image/png;base64 and data:image/jpeg;base64 URLs', `data:image/png;base64,${pngBase64('frontal')}`, `data:image/jpeg;base64,${jpegBase64('side')}`],
    ])('when the images are %s, then the task is accepted', async (_label, frontal, refer) => {
      await expectAccepted(validImageTask({ element_image_list: imageList(frontal, refer) }));
    });

    test.each([
      ['an ftp:// URL', 'ftp://media.example.com/a.png', /http\(s\) URL/],
      ['garbage text', 'not an image at all', /http\(s\) URL or a base64/],
      ['base64 of the wrong length', 'iVBORw0KGgo', /base64/],
      ['base64 that is not a PNG or JPEG (a GIF)', Buffer.from('GIF89a-not-allowed').toString('base64'), /\.jpg\/\.jpeg or \.png/],
      ['base64 of plain text', Buffer.from('photo123').toString('base64'), /\.jpg\/\.jpeg or \.png/],
      ['an http URL without a host', 'http://', /http\(s\) URL/],
      ['a data URL of another type', `data:image/gif;base64,${pngBase64('gif')}`, /data:image\/png;base64/],
      ['a data URL with garbage after the prefix', 'data:image/png;base64,not base64!', /base64/],
      ['empty', '', /must not be empty/],
    ])('when frontal_image is %s, then 400 naming frontal_image', async (_label, value, message) => {
      await expectRejected(validImageTask({ element_image_list: imageList(value, IMAGE_B) }), 'element_image_list.frontal_image', message);
    });

    test('when a refer image is an ftp:// URL, then 400 naming that refer image', async () => {
      await expectRejected(
        validImageTask({ element_image_list: imageList(IMAGE_A, IMAGE_B, 'ftp://media.example.com/c.png') }),
        'element_image_list.refer_images.1.image_url',
        /http\(s\) URL/,
      );
    });

    test('when a base64 image decodes to 1 byte over 10MB, then 400 saying images must not exceed 10MB', async () => {
      // The only large payload in this file: ~14 MB of base64, one byte past the limit once decoded.
      const tooBig = Buffer.alloc(TEN_MB + 1, 0xab).toString('base64');
      await expectRejected(validImageTask({ element_image_list: imageList(IMAGE_A, tooBig) }), 'element_image_list.refer_images.0.image_url', /^10,485,761 bytes exceeds the 10 MB limit \(10,485,760 bytes\)$/);
    });
  });

  describe('base64 image content (the seed\'s media rules, read from the image itself)', () => {
    test.each([
      ['a 300×300 PNG (smallest sides allowed)', () => pngBase64('min', 300, 300)],
      ['a 750×300 JPEG (2.5:1, the widest allowed)', () => jpegBase64('wide', 750, 300)],
      ['a 300×750 PNG (1:2.5, the tallest allowed)', () => pngBase64('tall', 300, 750)],
    ])('when the refer image is %s, then the task is accepted', async (_label, image) => {
      await expectAccepted(validImageTask({ element_image_list: imageList(IMAGE_A, image()) }));
    });

    test.each([
      ['a 299×400 PNG (one side 1 px short)', () => pngBase64('narrow', 299, 400), /299×400 px is smaller than 300 px on a side/],
      ['a 400×299 JPEG', () => jpegBase64('short', 400, 299), /400×299 px is smaller than 300 px on a side/],
      ['a 751×300 PNG (just wider than 2.5:1)', () => pngBase64('too-wide', 751, 300), /aspect ratio 2\.51:1 is outside 1:2\.5–2\.5:1/],
      ['a 300×940 JPEG (1:3.14)', () => jpegBase64('too-tall', 300, 940), /aspect ratio 1:3\.14 is outside 1:2\.5–2\.5:1/],
      ['a GIF', () => Buffer.from('GIF89a\x40\x01\x40\x01\x00\x00\x00;').toString('base64'), /gif image; Kling takes \.jpg\/\.jpeg or \.png only/],
      ['a PNG signature followed by nothing usable', () => Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3, 4]).toString('base64'), /\.jpg\/\.jpeg or \.png/],
    ])('when the refer image is %s, then 400 naming that image and the rule', async (_label, image, message) => {
      await expectRejected(validImageTask({ element_image_list: imageList(IMAGE_A, image()) }), 'element_image_list.refer_images.0.image_url', message);
    });

    test('when a PNG is sent under a data:image/jpeg prefix, then its bytes decide: it is accepted as the PNG it is', async () => {
      await expectAccepted(validImageTask({ element_image_list: imageList(IMAGE_A, `data:image/jpeg;base64,${pngBase64('mislabelled')}`) }));
    });

    test('when a refer image carries the frontal image\'s bytes in other base64 text, then 400: it must differ in content', async () => {
      // A file whose length is not a multiple of 3 ends in padding; the character before it has unused
      // low bits (4 before "==", 2 before "="): setting them changes the text, not the bytes.
      const width = [320, 321, 322].find((w) => Buffer.from(pngBase64('same-bytes', w, 320), 'base64').length % 3 !== 0)!;
      const frontal = pngBase64('same-bytes', width, 320);
      const padding = frontal.endsWith('==') ? 2 : 1;
      const at = frontal.length - padding - 1;
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
      const sameBytes = `${frontal.slice(0, at)}${alphabet[alphabet.indexOf(frontal[at]!) | (padding === 2 ? 0b1111 : 0b11)]}${'='.repeat(padding)}`;
      expect(sameBytes).not.toBe(frontal);
      expect(Buffer.from(sameBytes, 'base64').equals(Buffer.from(frontal, 'base64'))).toBe(true);

      await expectRejected(validImageTask({ element_image_list: imageList(frontal, sameBytes) }), 'element_image_list.refer_images.0.image_url', /differ/);
    });
  });

  describe('element_video_list', () => {
    test('when reference_type is video_refer with exactly 1 http(s) video, then the task is accepted', async () => {
      await expectAccepted(validVideoTask());
      await expectAccepted(validVideoTask({ element_video_list: videoList('http://media.example.com/person.mov') }));
    });

    test('when reference_type is video_refer without element_video_list, then 400 saying it is required', async () => {
      await expectRejected(validVideoTask({ element_video_list: undefined }), 'element_video_list', /required.*video_refer/);
    });

    test('when refer_videos is empty, then 400 saying exactly 1 video', async () => {
      await expectRejected(validVideoTask({ element_video_list: videoList() }), 'element_video_list.refer_videos', /exactly 1/);
    });

    test('when refer_videos has 2 videos, then 400 saying exactly 1 video', async () => {
      await expectRejected(
        validVideoTask({ element_video_list: videoList('https://media.example.com/a.mp4', 'https://media.example.com/b.mp4') }),
        'element_video_list.refer_videos',
        /exactly 1/,
      );
    });

    test('when refer_videos is missing, then 400 saying it is required', async () => {
      await expectRejected(validVideoTask({ element_video_list: {} }), 'element_video_list.refer_videos', /required/);
    });

    test('when video_url is missing, then 400 saying it is required', async () => {
      await expectRejected(validVideoTask({ element_video_list: { refer_videos: [{}] } }), 'element_video_list.refer_videos.0.video_url', /required/);
    });

    test.each([
      ['empty', ''],
      ['an ftp:// URL', 'ftp://media.example.com/person.mp4'],
      ['raw base64', pngBase64('video')],
    ])('when video_url is %s, then 400 saying it must be an http(s) URL', async (_label, value) => {
      await expectRejected(validVideoTask({ element_video_list: videoList(value) }), 'element_video_list.refer_videos.0.video_url', /http\(s\) URL/);
    });

    test('when element_video_list is sent with image_refer, then 400 saying it is invalid there', async () => {
      await expectRejected(validImageTask({ element_video_list: videoList('https://media.example.com/person.mp4') }), 'element_video_list', /invalid.*image_refer/);
    });
  });

  describe('element_voice_id', () => {
    test('when element_voice_id is sent with video_refer, then the task is accepted', async () => {
      await expectAccepted(validVideoTask({ element_voice_id: 'voice-123' }));
    });

    test('when element_voice_id is an empty string with image_refer, then it means "no voice" and the task is accepted', async () => {
      const response = await expectAccepted(validImageTask({ element_voice_id: '' }));
      expect(response.body.request.element_voice_id).toBeUndefined();
    });

    test('when element_voice_id is sent with image_refer, then 400 saying it needs video_refer', async () => {
      await expectRejected(validImageTask({ element_voice_id: 'voice-123' }), 'element_voice_id', /video_refer/);
    });
  });

  describe('tag_list', () => {
    test('when tag_list holds the first and last tag ids o_101 and o_108, then the task is accepted', async () => {
      await expectAccepted(validImageTask({ tag_list: [{ tag_id: 'o_101' }, { tag_id: 'o_108' }] }));
    });

    test.each(['o_100', 'o_109', 'O_101', ''])('when a tag id is %p, then 400 naming that tag and listing the allowed ids', async (tagId) => {
      await expectRejected(validImageTask({ tag_list: [{ tag_id: 'o_102' }, { tag_id: tagId }] }), 'tag_list.1.tag_id', /o_101.*o_108/);
    });

    test('when tag_list is not an array, then 400 naming tag_list', async () => {
      await expectRejected(validImageTask({ tag_list: 'o_101' }), 'tag_list', /array/);
    });
  });

  describe('callback_url', () => {
    test.each(['https://client.example.com/hook', 'http://client.example.com/hook?x=1'])('when callback_url is %p, then the task is accepted', async (url) => {
      await expectAccepted(validImageTask({ callback_url: url }));
    });

    test('when callback_url is an empty string, then it counts as not given and the task is accepted', async () => {
      const response = await expectAccepted(validImageTask({ callback_url: '' }));
      expect(response.body.request.callback_url).toBeUndefined();
    });

    test.each(['ftp://client.example.com/hook', 'client.example.com/hook'])('when callback_url is %p, then 400 saying it must be an http(s) URL', async (url) => {
      await expectRejected(validImageTask({ callback_url: url }), 'callback_url', /http\(s\) URL/);
    });
  });

  describe('external_task_id', () => {
    test('when external_task_id has exactly 128 characters, then the task is accepted', async () => {
      const id = `${uniqueExternalId()}-`;
      await expectAccepted(validImageTask({ external_task_id: id.padEnd(128, 'x') }));
    });

    test('when external_task_id has 129 characters, then 400 naming external_task_id', async () => {
      await expectRejected(validImageTask({ external_task_id: 'x'.repeat(129) }), 'external_task_id', /128 characters/);
    });

    test('when external_task_id is an empty string (as in Kling\'s own example), then it counts as not given', async () => {
      const response = await expectAccepted(validImageTask({ external_task_id: '' }));
      expect(response.body.external_task_id).toBeNull();
    });

    test('when external_task_id is blank, then 400 saying it must not be blank', async () => {
      await expectRejected(validImageTask({ external_task_id: '   ' }), 'external_task_id', /must not be blank/);
    });
  });

  describe('the body as a whole', () => {
    test('when the body has an unknown top-level field, then 400 naming that field', async () => {
      await expectRejected(validImageTask({ model_name: 'kling-v3' }), 'model_name', /unknown|not a known|not allowed|unrecogni[sz]ed/i);
    });

    test('when several fields are wrong, then 400 naming each of them', async () => {
      const response = await expectRejected(
        validImageTask({ element_name: 'n'.repeat(21), element_description: 'd'.repeat(101), tag_list: [{ tag_id: 'o_109' }] }),
        'element_name',
        /20 characters/,
      );
      expect(response.body.errors.map((e: { path: string }) => e.path).sort()).toEqual(['element_description', 'element_name', 'tag_list.0.tag_id']);
    });

    test('when the body is a JSON array, then 400 saying an object is expected', async () => {
      await expectRejected([validImageTask()], '', /object/);
    });

    test.each([
      ['truncated JSON', '{"element_name": "Hero",'],
      ['a bare JSON string', '"Hero"'],
      ['not JSON at all', 'element_name=Hero'],
    ])('when the body is %s, then 400 INVALID_JSON problem', async (_label, raw) => {
      const before = await state();
      const response = await service.http.post('/v1/tasks').set('authorization', auth).set('content-type', 'application/json').send(raw);
      expectProblem(response, 400, 'INVALID_JSON');
      await expectNothingHappened(before);
    });

    test.each([
      ['text/plain', JSON.stringify(validImageTask())],
      ['application/x-www-form-urlencoded', 'element_name=Hero&element_description=x&reference_type=image_refer'],
    ])('when the content type is %s, then 415 problem', async (contentType, raw) => {
      const before = await state();
      const response = await service.http.post('/v1/tasks').set('authorization', auth).set('content-type', contentType).send(raw);
      expectProblem(response, 415, 'UNSUPPORTED_MEDIA_TYPE');
      await expectNothingHappened(before);
    });
  });
});

describe('POST /v1/tasks image normalisation (with workers)', () => {
  let service: TestService;
  let auth: string;

  beforeAll(async () => {
    service = await startTestService();
    ({ auth } = await service.createTenant());
  });
  afterAll(() => service.stop());

  const submitAndGetUpstreamBody = async (body: Body) => {
    const created = await service.http.post('/v1/tasks').set('authorization', auth).send(body);
    expect({ status: created.status, body: created.body }).toMatchObject({ status: 202 });
    await service.waitForTask(created.body.task_id, (task) => task.status === 'succeed');
    const sent = service.fake!.creates().filter((r) => r.body.external_task_id === created.body.task_id);
    expect(sent).toHaveLength(1);
    return sent[0]!.body;
  };

  test('when images are sent as data:image/…;base64 URLs, then Kling receives the raw base64 without the data: prefix', async () => {
    const frontal = pngBase64('frontal-data-url');
    const refer = jpegBase64('refer-data-url');
    const upstream = await submitAndGetUpstreamBody(
      validImageTask({ element_image_list: imageList(`data:image/png;base64,${frontal}`, `DATA:image/jpeg;base64,${refer}`) }),
    );

    expect(upstream.element_image_list).toEqual(imageList(frontal, refer));
    expect(JSON.stringify(upstream)).not.toMatch(/data:/i);
  });

  test('when images are sent as raw base64 and URLs, then Kling receives them unchanged', async () => {
    const frontal = pngBase64('frontal-raw');
    const upstream = await submitAndGetUpstreamBody(validImageTask({ element_image_list: imageList(frontal, IMAGE_B) }));

    expect(upstream.element_image_list).toEqual(imageList(frontal, IMAGE_B));
  });
});
