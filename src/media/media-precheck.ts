import { checkImageUrl, imageUrlContentHash } from './image-check';
import { contentHash, type ImageFacts, ImageRuleError, inspectImage, isImageUrl } from './image-rules';
import { fetchMedia, MediaFetchError, validatorOf, type MediaFetchOptions } from './media-fetch';
import { checkVideoUrl, type VideoFacts, VideoRuleError } from './video-check';

/**
 * The worker's media check before a task goes to Kling (MEDIA_PRECHECK): every image and video URL of
 * the request is read and held to Kling's rules, so a bad file fails the task at once with a message
 * naming the field and the rule instead of minutes later upstream.
 */

/** A medium that breaks a rule (`invalid`: the task fails) or cannot be read now (`unavailable`: retried). */
export class MediaCheckError extends Error {
  constructor(
    readonly kind: 'invalid' | 'unavailable',
    readonly field: string,
    reason: string,
  ) {
    super(`${field}: ${reason}`);
    this.name = 'MediaCheckError';
  }
}

export interface MediaPrecheckOptions extends MediaFetchOptions {
  /** How long a URL's result is reused — after a HEAD shows the same ETag or size. */
  cacheTtlMs: number;
  /** Entries kept at most (oldest dropped first). */
  cacheEntries?: number;
}

/** What was checked, for the task's timeline (`media_checked` event). */
export interface MediaReport {
  images?: ({ field: string } & ImageFacts)[];
  video?: { field: string } & VideoFacts;
}

/** The media fields of a create request, as stored (base64 already without a data: prefix). */
export interface MediaRequest {
  element_image_list?: { frontal_image: string; refer_images: { image_url: string }[] };
  element_video_list?: { refer_videos: { video_url: string }[] };
}


/** Runs one medium's check; whatever it breaks or cannot read is reported under its field. */
async function forField<T>(field: string, check: () => T | Promise<T>): Promise<T> {
  try {
    return await check();
  } catch (error) {
    throw asCheckError(field, error);
  }
}

function asCheckError(field: string, error: unknown): MediaCheckError {
  if (error instanceof MediaCheckError) return error;
  if (error instanceof ImageRuleError || error instanceof VideoRuleError) return new MediaCheckError('invalid', field, error.message);
  if (error instanceof MediaFetchError) return new MediaCheckError(error.kind, field, error.message);
  throw error;
}

interface CacheEntry {
  validator: string;
  facts: unknown;
  expiresAt: number;
}

export function createMediaPrecheck(options: MediaPrecheckOptions) {
  const cache = new Map<string, CacheEntry>();
  const maxEntries = options.cacheEntries ?? 1_000;

  /** A cached result is reused only while fresh and only if a HEAD shows the file unchanged. */
  async function cached<T>(url: string, check: () => Promise<{ facts: T; validator?: string }>): Promise<T> {
    const entry = cache.get(url);
    if (entry && entry.expiresAt > Date.now()) {
      const head = await fetchMedia(url, { method: 'HEAD', maxBytes: 0 }, options).catch(() => undefined);
      if (head && validatorOf(head) === entry.validator) return entry.facts as T;
    }
    cache.delete(url);
    const { facts, validator } = await check();
    if (validator) {
      if (cache.size >= maxEntries) cache.delete(cache.keys().next().value!);
      cache.set(url, { validator, facts, expiresAt: Date.now() + options.cacheTtlMs });
    }
    return facts;
  }

  const imageFacts = (field: string, source: string): Promise<ImageFacts> =>
    forField(field, () => (isImageUrl(source) ? cached(source, () => checkImageUrl(source, options)) : inspectImage(Buffer.from(source, 'base64'))));

  const imageHash = (field: string, source: string): Promise<string> =>
    forField(field, () =>
      isImageUrl(source) ? cached(`sha256:${source}`, () => imageUrlContentHash(source, options)) : contentHash(Buffer.from(source, 'base64')),
    );

  /** Read in parallel; the first failure in field order is reported, so the message does not depend on timing. */
  async function inFieldOrder<T>(jobs: Promise<T>[]): Promise<T[]> {
    const settled = await Promise.allSettled(jobs);
    const failed = settled.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failed) throw failed.reason;
    return settled.map((result) => (result as PromiseFulfilledResult<T>).value);
  }

  async function checkImages(list: NonNullable<MediaRequest['element_image_list']>, referMayEqualFrontal: boolean): Promise<MediaReport['images']> {
    const sources = [
      { field: 'element_image_list.frontal_image', source: list.frontal_image },
      ...list.refer_images.map((image, index) => ({ field: `element_image_list.refer_images[${index}]`, source: image.image_url })),
    ];
    const facts = await inFieldOrder(sources.map(({ field, source }) => imageFacts(field, source)));
    if (!referMayEqualFrontal) {
      // Files of different sizes differ: only a refer image as large as the frontal one is read whole and hashed.
      const [frontal, ...refers] = sources;
      const suspects = refers.filter((_refer, index) => facts[index + 1]!.bytes === facts[0]!.bytes);
      if (suspects.length) {
        const [frontalHash, ...hashes] = await inFieldOrder([frontal!, ...suspects].map(({ field, source }) => imageHash(field, source)));
        const twin = suspects.find((_suspect, index) => hashes[index] === frontalHash);
        if (twin) throw new MediaCheckError('invalid', twin.field, 'has the same content as frontal_image (refer images must differ from it)');
      }
    }
    return facts.map((fact, index) => ({ field: sources[index]!.field, ...fact }));
  }

  async function checkVideo(url: string): Promise<NonNullable<MediaReport['video']>> {
    const field = 'element_video_list.refer_videos[0]';
    return forField(field, async () => ({ field, ...(await cached(url, () => checkVideoUrl(url, options))) }));
  }

  /**
   * Checks the request's media; throws MediaCheckError. `referMayEqualFrontal`: the Kling-compatible
   * surface accepts a refer image equal to the frontal one, as Kling's own example does.
   */
  return async function checkTaskMedia(request: MediaRequest, { referMayEqualFrontal = false } = {}): Promise<MediaReport> {
    const report: MediaReport = {};
    if (request.element_image_list) report.images = await checkImages(request.element_image_list, referMayEqualFrontal);
    const video = request.element_video_list?.refer_videos[0]?.video_url;
    if (video) report.video = await checkVideo(video);
    return report;
  };
}

export type MediaPrecheck = ReturnType<typeof createMediaPrecheck>;
