import { networkInterfaces } from 'node:os';
import { isForbiddenAddress } from '../../src/webhooks/safe-address';
import { uniqueExternalId, validImageTask } from '../helpers/factories';
import { jpegImage, pngImage } from '../helpers/media';
import { MediaServer } from '../helpers/media-server';
import { useMediaRig } from '../helpers/media-rig';

/**
 * MEDIA_PRECHECK on image URLs, through the whole service: the worker reads each image from a real
 * media server on loopback and either lets the task go to Kling or fails it with media_invalid, naming
 * the field and the rule — in which case Kling never hears of it.
 */
describe('media check: image URLs', () => {
  const rig = useMediaRig({ MEDIA_PRECHECK: 'on', MEDIA_FETCH_TIMEOUT_MS: '400', KLING_MAX_ATTEMPTS: '3' });
  let paths = 0;

  const serve = (body: Buffer, route: Parameters<MediaServer['serve']>[1] = {}) => rig.media.serve(`/img-${++paths}.png`, { body, contentType: 'image/png', ...route });
  const submit = async (frontal: string, ...refers: string[]) => {
    const created = await rig.service.http
      .post('/v1/tasks')
      .set('authorization', rig.auth)
      .send(validImageTask({ external_task_id: uniqueExternalId('media'), element_image_list: { frontal_image: frontal, refer_images: refers.map((image_url) => ({ image_url })) } }));
    expect(created.status).toBe(202);
    return created.body.task_id as string;
  };
  const finished = (taskId: string) => rig.service.waitForTask(taskId, (task) => task.status === 'succeed' || task.status === 'failed', 15_000);
  const createsFor = (taskId: string) => rig.service.fake!.creates().filter((request) => request.body.external_task_id === taskId);
  const expectMediaInvalid = async (taskId: string, message: string) => {
    const task = await finished(taskId);
    expect(task).toMatchObject({ status: 'failed', statusMessage: 'media check failed', error: { code: 'media_invalid', message } });
    expect(createsFor(taskId)).toHaveLength(0);
  };


  test('when the images keep every rule, then the task reaches Kling and succeeds, and its timeline shows what was checked', async () => {
    const frontal = serve(pngImage(300, 750, 'front'));
    const refer = serve(jpegImage(750, 300, 'side'), { contentType: 'image/jpeg' });

    const taskId = await submit(frontal, refer);

    expect(await finished(taskId)).toMatchObject({ status: 'succeed' });
    expect(createsFor(taskId)).toHaveLength(1);
    const checked = (await rig.service.runtime.tasks.listEvents(taskId)).find((event) => event.type === 'media_checked');
    expect(checked?.detail).toMatchObject({
      images: [
        { field: 'element_image_list.frontal_image', format: 'png', width: 300, height: 750 },
        { field: 'element_image_list.refer_images[0]', format: 'jpeg', width: 750, height: 300 },
      ],
    });
  });

  test.each([
    ['299×400 px', () => pngImage(299, 400), '299×400 px is smaller than 300 px on a side'],
    ['751×300 px (just past 2.5:1)', () => pngImage(751, 300), 'aspect ratio 2.51:1 is outside 1:2.5–2.5:1'],
    ['a GIF named .png', () => Buffer.from('GIF89a\x40\x01\x40\x01\x00\x00\x00;'), 'is a gif image; Kling takes .jpg/.jpeg or .png only'],
    ['an HTML error page served as 200', () => Buffer.from('<html>not found</html>'), 'is not a .jpg/.jpeg or .png image (its bytes are neither)'],
  ])('when a refer image is %s, then the task fails with media_invalid naming it and the rule', async (_label, body, rule) => {
    const taskId = await submit(serve(pngImage(320, 320, 'ok-front')), serve(pngImage(320, 320, 'ok-1')), serve(body()));

    await expectMediaInvalid(taskId, `element_image_list.refer_images[1]: ${rule}`);
  });

  test('when a refer image at another URL has the frontal image\'s content, then media_invalid: it must differ', async () => {
    const bytes = pngImage(320, 320, 'twin');

    const taskId = await submit(serve(bytes), serve(Buffer.from(bytes)));

    await expectMediaInvalid(taskId, 'element_image_list.refer_images[0]: has the same content as frontal_image (refer images must differ from it)');
  });

  test('when large images of different sizes are served with byte ranges, then only their first 64 KiB are read', async () => {
    const padded = (label: string, bytes: number) => {
      const image = pngImage(320, 320, label);
      return Buffer.concat([image, Buffer.alloc(bytes - image.length)]);
    };
    const frontal = serve(padded('big-front', 6 * 1024 * 1024), { sliceDelayMs: 2 });
    const refer = serve(padded('big-side', 5 * 1024 * 1024), { sliceDelayMs: 2 });

    const taskId = await submit(frontal, refer);

    expect(await finished(taskId)).toMatchObject({ status: 'succeed' });
    for (const url of [frontal, refer]) {
      const requests = rig.media.requestsFor(new URL(url).pathname);
      expect(requests.map((request) => request.range)).toEqual(['bytes=0-65535']);
      expect(requests[0]!.bytesSent).toBe(65_536);
    }
  });

  test('when a JPEG\'s dimensions lie past its first 64 KiB (large metadata segments), then it is read whole and checked', async () => {
    const jpeg = jpegImage(400, 400, 'exif');
    const segment = (n: number) => Buffer.concat([Buffer.from([0xff, 0xe1 + n]), Buffer.from([0x9c, 0x42]), Buffer.alloc(0x9c40, n)]);
    const url = serve(Buffer.concat([jpeg.subarray(0, 2), segment(0), segment(1), jpeg.subarray(2)]), { contentType: 'image/jpeg' });

    const taskId = await submit(url, serve(pngImage(320, 320, 'plain')));

    expect(await finished(taskId)).toMatchObject({ status: 'succeed' });
    expect(rig.media.requestsFor(new URL(url).pathname).map((request) => request.range)).toEqual(['bytes=0-65535', undefined]);
    const checked = (await rig.service.runtime.tasks.listEvents(taskId)).find((event) => event.type === 'media_checked');
    expect(checked?.detail).toMatchObject({ images: [{ format: 'jpeg', width: 400, height: 400 }, { format: 'png' }] });
  });

  test('when an image is exactly 10 MB, then it passes', async () => {
    const image = pngImage(320, 320, 'ten');
    // Bytes after a PNG's IEND chunk are ignored by readers: a valid image of exactly the limit.
    const url = serve(Buffer.concat([image, Buffer.alloc(10 * 1024 * 1024 - image.length)]));

    const taskId = await submit(url, serve(pngImage(320, 320, 'ten-side')));

    expect(await finished(taskId)).toMatchObject({ status: 'succeed' });
  });

  test('when an image announces more than 10 MB, then it fails without its body being read', async () => {
    const big = Buffer.concat([pngImage(320, 320, 'big'), Buffer.alloc(10 * 1024 * 1024 + 1 - pngImage(320, 320, 'big').length)]);
    const url = serve(big, { sliceDelayMs: 5 });

    const taskId = await submit(url, serve(pngImage(320, 320, 'small')));

    await expectMediaInvalid(taskId, 'element_image_list.frontal_image: 10,485,761 bytes exceeds the 10 MB limit (10,485,760 bytes)');
    const sent = rig.media.requestsFor(new URL(url).pathname).reduce((sum, request) => sum + request.bytesSent, 0);
    expect(sent).toBeLessThan(2 * 1024 * 1024);
  });

  test('when an image of unannounced size runs past 10 MB, then the read stops just past the limit', async () => {
    const url = serve(Buffer.concat([pngImage(320, 320, 'stream'), Buffer.alloc(30 * 1024 * 1024)]), { chunked: true, ranges: false, sliceDelayMs: 1 });

    const taskId = await submit(url, serve(pngImage(320, 320, 'small-2')));

    await expectMediaInvalid(taskId, 'element_image_list.frontal_image: is larger than the 10 MB limit (reading stopped at 10,485,760 bytes)');
    const sent = rig.media.requestsFor(new URL(url).pathname).reduce((sum, request) => sum + request.bytesSent, 0);
    expect(sent).toBeLessThan(15 * 1024 * 1024);
  });

  test('when an image URL answers 404, then media_invalid says so', async () => {
    const taskId = await submit(`${rig.media.baseUrl}/missing.png`, serve(pngImage(320, 320, 'present')));

    await expectMediaInvalid(taskId, 'element_image_list.frontal_image: could not be fetched: HTTP 404');
  });

  test('when an image URL redirects more than 3 times, then media_invalid says so', async () => {
    const target = serve(pngImage(320, 320, 'far'));
    let url = target;
    for (let hop = 0; hop < 4; hop++) url = rig.media.serve(`/hop-${++paths}`, { redirectTo: url });

    const taskId = await submit(url, serve(pngImage(320, 320, 'near')));

    await expectMediaInvalid(taskId, 'element_image_list.frontal_image: more than 3 redirects');
  });

  test('when an image URL redirects 3 times to a good image, then it is followed and the task succeeds', async () => {
    let url = serve(pngImage(320, 320, 'followed'));
    for (let hop = 0; hop < 3; hop++) url = rig.media.serve(`/hop-${++paths}`, { redirectTo: url });

    const taskId = await submit(url, serve(pngImage(320, 320, 'direct')));

    expect(await finished(taskId)).toMatchObject({ status: 'succeed' });
  });

  test('when the media server fails twice with 503 and then answers, then the task is retried and succeeds', async () => {
    const url = serve(pngImage(320, 320, 'flaky'), { statusSequence: [503, 503] });

    const taskId = await submit(url, serve(pngImage(320, 320, 'steady')));

    expect(await finished(taskId)).toMatchObject({ status: 'succeed', attempts: 3 });
    const retries = (await rig.service.runtime.tasks.listEvents(taskId)).filter((event) => event.type === 'submit_retry');
    expect(retries.map((event) => (event.detail as { code: string }).code)).toEqual(['media_unavailable', 'media_unavailable']);
  });

  test('when the media server is too slow, then each attempt times out and the task fails saying so, never reaching Kling', async () => {
    const url = serve(pngImage(320, 320, 'slow'), { delayMs: 2_000 });

    const taskId = await submit(url, serve(pngImage(320, 320, 'fast')));

    const task = await finished(taskId);
    expect(task).toMatchObject({ status: 'failed', attempts: 3, error: { code: 'media_unavailable', message: 'element_image_list.frontal_image: no answer within 400 ms' } });
    expect(task.statusMessage).toBe('gave up after 3 attempts');
    expect(createsFor(taskId)).toHaveLength(0);
  });

  test('when the media server is down, then the task is retried and fails saying the image could not be fetched', async () => {
    const dead = new MediaServer();
    await dead.start();
    const url = dead.serve('/gone.png', { body: pngImage(320, 320) });
    await dead.stop();

    const taskId = await submit(url, serve(pngImage(320, 320, 'alive')));

    expect(await finished(taskId)).toMatchObject({
      status: 'failed',
      error: { code: 'media_unavailable', message: 'element_image_list.frontal_image: could not be fetched: ECONNREFUSED' },
    });
    expect(createsFor(taskId)).toHaveLength(0);
  });

  test('when the same image URLs are submitted again soon, then they are not read again: a HEAD shows them unchanged', async () => {
    const frontal = serve(pngImage(320, 320, 'cached-front'), { etag: '"v1"' });
    const refer = serve(pngImage(320, 320, 'cached-side'));
    expect(await finished(await submit(frontal, refer))).toMatchObject({ status: 'succeed' });

    expect(await finished(await submit(frontal, refer))).toMatchObject({ status: 'succeed' });

    for (const url of [frontal, refer]) expect(rig.media.requestsFor(new URL(url).pathname).map((request) => request.method)).toEqual(['GET', 'HEAD']);
  });

  test('when a cached image changed on its server, then it is read and checked again', async () => {
    const path = `/changing-${++paths}.png`;
    const url = rig.media.serve(path, { body: pngImage(320, 320, 'before'), etag: '"a"' });
    const refer = serve(pngImage(320, 320, 'stays'));
    expect(await finished(await submit(url, refer))).toMatchObject({ status: 'succeed' });
    rig.media.serve(path, { body: pngImage(320, 200, 'after'), etag: '"b"' });

    await expectMediaInvalid(await submit(url, refer), 'element_image_list.frontal_image: 320×200 px is smaller than 300 px on a side');
  });
});

describe('media check: addresses the worker must not read', () => {
  // As in production: private addresses refused.
  const rig = useMediaRig({ MEDIA_PRECHECK: 'on', ALLOW_PRIVATE_CALLBACKS: 'false' });


  /** An address of this machine that the guard allows (a non-private interface), when it has one. */
  const publicAddress = Object.values(networkInterfaces())
    .flat()
    .find((entry) => entry && entry.family === 'IPv4' && !isForbiddenAddress(entry.address))?.address;

  // Needs a second, allowed address to redirect from; this kind of machine has one on eth0.
  (publicAddress ? test : test.skip)('when an allowed media host redirects to a loopback address, then the redirect is refused and the loopback server never asked', async () => {
    const inside = `/inside-${Math.random().toString(36).slice(2)}.png`;
    rig.media.serve(inside, { body: pngImage(320, 320) });
    const outside = await new MediaServer().start(publicAddress);
    try {
      const url = outside.serve('/moved.png', { redirectTo: `${rig.media.baseUrl}${inside}` });
      const created = await rig.service.http
        .post('/v1/tasks')
        .set('authorization', rig.auth)
        .send(validImageTask({ element_image_list: { frontal_image: url, refer_images: [{ image_url: 'https://media.example.com/side.png' }] } }));
      const task = await rig.service.waitForTask(created.body.task_id, (t) => t.status === 'failed', 15_000);

      expect(task.error).toEqual({ code: 'media_invalid', message: 'element_image_list.frontal_image: 127.0.0.1 is a private, loopback or link-local address' });
      expect(outside.requestsFor('/moved.png')).toHaveLength(1);
      expect(rig.media.requestsFor(inside)).toHaveLength(0);
    } finally {
      await outside.stop();
    }
  });

  test.each([
    ['a loopback IP', (path: string) => `${rig.media.baseUrl}${path}`, /127\.0\.0\.1 is a private, loopback or link-local address/],
    ['a name that resolves to loopback', (path: string) => `${rig.media.baseUrl.replace('127.0.0.1', 'localhost')}${path}`, /localhost resolves to (127\.0\.0\.1|::1), a private, loopback or link-local address/],
  ])('when an image URL points at %s, then media_invalid and the server is never asked', async (_label, urlFor, message) => {
    const path = `/private-${Math.random().toString(36).slice(2)}.png`;
    rig.media.serve(path, { body: pngImage(320, 320) });

    const created = await rig.service.http
      .post('/v1/tasks')
      .set('authorization', rig.auth)
      .send(validImageTask({ element_image_list: { frontal_image: urlFor(path), refer_images: [{ image_url: 'https://media.example.com/side.png' }] } }));
    const task = await rig.service.waitForTask(created.body.task_id, (t) => t.status === 'failed', 15_000);

    expect(task.error?.code).toBe('media_invalid');
    expect(task.error?.message).toMatch(message);
    expect(task.error?.message).toMatch(/^element_image_list\.frontal_image: /);
    expect(rig.media.requestsFor(path)).toHaveLength(0);
    expect(rig.service.fake!.creates().filter((request) => request.body.external_task_id === task.id)).toHaveLength(0);
  });
});
