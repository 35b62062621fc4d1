import { uniqueExternalId, validVideoTask } from '../helpers/factories';
import { pngImage, videoFile, type VideoOptions } from '../helpers/media';
import type { MediaRoute } from '../helpers/media-server';
import { useMediaRig } from '../helpers/media-rig';
import { startTestService } from '../helpers/test-service';

/**
 * MEDIA_PRECHECK on the element video, through the whole service: MP4/MOV files built box by box are
 * served with and without byte ranges; the worker reads the container's metadata (not the media data)
 * and holds it to Kling's rules.
 */
describe('media check: video URLs', () => {
  const rig = useMediaRig({ MEDIA_PRECHECK: 'on', KLING_MAX_ATTEMPTS: '2' });
  let paths = 0;

  const FULL_HD: VideoOptions = { width: 1920, height: 1080, durationS: 5 };
  const serve = (body: Buffer, route: MediaRoute = {}) => rig.media.serve(`/video-${++paths}.mp4`, { body, contentType: 'video/mp4', ...route });
  const submit = async (videoUrl: string) => {
    const created = await rig.service.http
      .post('/v1/tasks')
      .set('authorization', rig.auth)
      .send(validVideoTask({ external_task_id: uniqueExternalId('video'), element_video_list: { refer_videos: [{ video_url: videoUrl }] } }));
    expect(created.status).toBe(202);
    return created.body.task_id as string;
  };
  const finished = (taskId: string) => rig.service.waitForTask(taskId, (task) => task.status === 'succeed' || task.status === 'failed', 15_000);
  const createsFor = (taskId: string) => rig.service.fake!.creates().filter((request) => request.body.external_task_id === taskId);
  const checkedVideo = async (taskId: string) =>
    ((await rig.service.runtime.tasks.listEvents(taskId)).find((event) => event.type === 'media_checked')?.detail as { video: Record<string, unknown> }).video;
  const expectMediaInvalid = async (taskId: string, rule: string) => {
    expect(await finished(taskId)).toMatchObject({ status: 'failed', error: { code: 'media_invalid', message: `element_video_list.refer_videos[0]: ${rule}` } });
    expect(createsFor(taskId)).toHaveLength(0);
  };
  const bytesServed = (url: string) => rig.media.requestsFor(new URL(url).pathname).reduce((sum, request) => sum + request.bytesSent, 0);


  test('when a 1920×1080 5 s MP4 has its metadata at the end, then byte ranges fetch the start and the metadata only, and the task succeeds', async () => {
    const file = videoFile({ ...FULL_HD, moovAtEnd: true, mdatBytes: 8 * 1024 * 1024 });
    const url = serve(file);

    const taskId = await submit(url);

    expect(await finished(taskId)).toMatchObject({ status: 'succeed' });
    expect(createsFor(taskId)).toHaveLength(1);
    expect(await checkedVideo(taskId)).toMatchObject({ field: 'element_video_list.refer_videos[0]', container: 'mp4', width: 1920, height: 1080, durationS: 5, bytes: file.length });
    const requests = rig.media.requestsFor(new URL(url).pathname);
    expect(requests.every((request) => request.range?.startsWith('bytes='))).toBe(true);
    expect(requests).toHaveLength(2);
    expect(bytesServed(url)).toBeLessThan(512 * 1024);
  });

  test('when the server ignores byte ranges and the metadata comes first, then only the start of the file is read', async () => {
    const file = videoFile({ ...FULL_HD, mdatBytes: 16 * 1024 * 1024 });
    const url = serve(file, { ranges: false, sliceDelayMs: 2 });

    const taskId = await submit(url);

    expect(await finished(taskId)).toMatchObject({ status: 'succeed' });
    const video = await checkedVideo(taskId);
    expect(video.bytesRead).toBeLessThanOrEqual(256 * 1024);
    expect(bytesServed(url)).toBeLessThan(4 * 1024 * 1024);
  });

  test('when the server ignores byte ranges and the metadata comes last, then the file is read through to it, and checked', async () => {
    const file = videoFile({ width: 1080, height: 1920, durationS: 8, moovAtEnd: true, mdatBytes: 2 * 1024 * 1024 });

    const taskId = await submit(serve(file, { ranges: false }));

    expect(await finished(taskId)).toMatchObject({ status: 'succeed' });
    expect(await checkedVideo(taskId)).toMatchObject({ width: 1080, height: 1920, durationS: 8 });
  });

  test.each([
    ['3 s long (the shortest allowed)', { ...FULL_HD, durationS: 3 }],
    ['8 s long (the longest allowed)', { ...FULL_HD, durationS: 8 }],
    ['portrait 1080×1920 (9:16)', { ...FULL_HD, width: 1080, height: 1920 }],
    ['a QuickTime .mov', { ...FULL_HD, container: 'mov' as const }],
  ])('when the video is %s, then it passes', async (_label, options) => {
    const taskId = await submit(serve(videoFile(options)));

    expect(await finished(taskId)).toMatchObject({ status: 'succeed' });
  });

  test.each([
    ['2.9 s long', { ...FULL_HD, durationS: 2.9 }, 'duration 2.9 s is outside 3–8 s'],
    ['8.1 s long', { ...FULL_HD, durationS: 8.1 }, 'duration 8.1 s is outside 3–8 s'],
    ['720p', { ...FULL_HD, width: 1280, height: 720 }, '1280×720 is not 1080p (1920×1080 or 1080×1920)'],
    ['4:3', { ...FULL_HD, width: 1440, height: 1080 }, '1440×1080 is not 16:9 or 9:16'],
    ['square', { ...FULL_HD, width: 1080, height: 1080 }, '1080×1080 is not 16:9 or 9:16'],
  ])('when the video is %s, then media_invalid names the rule', async (_label, options, rule) => {
    const taskId = await submit(serve(videoFile(options)));

    await expectMediaInvalid(taskId, rule);
  });

  test('when the "video" is a PNG, then media_invalid says it is not MP4/MOV', async () => {
    const taskId = await submit(serve(pngImage(320, 320)));

    await expectMediaInvalid(taskId, 'is not an MP4/MOV video (its bytes are not an ISO media container)');
  });

  test('when the server says the video is exactly 200 MB, then it passes (its metadata is at the start)', async () => {
    const taskId = await submit(serve(videoFile(FULL_HD), { claimedTotal: 200 * 1024 * 1024 }));

    expect(await finished(taskId)).toMatchObject({ status: 'succeed' });
    expect(await checkedVideo(taskId)).toMatchObject({ bytes: 200 * 1024 * 1024 });
  });

  test('when the server says the video is over 200 MB, then media_invalid without reading it', async () => {
    const url = serve(videoFile(FULL_HD), { claimedTotal: 200 * 1024 * 1024 + 1 });

    const taskId = await submit(url);

    await expectMediaInvalid(taskId, '209,715,201 bytes exceeds the 200 MB limit (209,715,200 bytes)');
    expect(rig.media.requestsFor(new URL(url).pathname)).toHaveLength(1);
  });

  test('when MEDIA_PRECHECK is off, then a video that breaks the rules still goes to Kling (Kling alone judges it)', async () => {
    const unchecked = await startTestService({ env: { MEDIA_PRECHECK: 'off' } });
    try {
      const { auth: otherAuth } = await unchecked.createTenant();
      const url = serve(videoFile({ ...FULL_HD, durationS: 12 }));
      const created = await unchecked.http.post('/v1/tasks').set('authorization', otherAuth).send(validVideoTask({ element_video_list: { refer_videos: [{ video_url: url }] } }));

      await unchecked.waitForTask(created.body.task_id, (task) => task.status === 'succeed');

      expect(unchecked.fake!.creates().filter((request) => request.body.external_task_id === created.body.task_id)).toHaveLength(1);
      expect(rig.media.requestsFor(new URL(url).pathname)).toHaveLength(0);
    } finally {
      await unchecked.stop();
    }
  });
});
