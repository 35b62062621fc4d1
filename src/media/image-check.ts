import { contentHash, type ImageFacts, ImageRuleError, IncompleteImageError, inspectImage, MAX_IMAGE_BYTES, sizeOverLimit } from './image-rules';
import { fetchMedia, validatorOf, type MediaFetchOptions, type MediaResponse } from './media-fetch';

/** A file the server announces as past 10 MB (its body was not read: `rejectAbove`). */
function refuseAnnouncedOversize(response: Pick<MediaResponse, 'totalBytes'>): void {
  if (response.totalBytes !== undefined && response.totalBytes > MAX_IMAGE_BYTES) throw new ImageRuleError(sizeOverLimit(response.totalBytes, MAX_IMAGE_BYTES));
}

/** PNG dimensions sit in the first 24 bytes, a JPEG's after its EXIF/ICC segments: 64 KiB covers nearly all. */
const HEAD_BYTES = 64 * 1024;

/**
 * An image URL held to the same rules as a base64 image, reading as little as the rules need: the first
 * 64 KiB (a range request) when the server says the file's size; the whole file (at most 10 MB) when it
 * does not, or when the dimensions lie further in. A size past the limit is refused unread.
 */
export async function checkImageUrl(url: string, options: MediaFetchOptions): Promise<{ facts: ImageFacts; validator?: string }> {
  const head = await fetchMedia(url, { range: { start: 0, end: HEAD_BYTES - 1 }, maxBytes: HEAD_BYTES, rejectAbove: MAX_IMAGE_BYTES }, options);
  refuseAnnouncedOversize(head);
  const complete = !head.truncated && (head.status === 200 || head.totalBytes === head.bytesRead);
  if (complete) return { facts: inspectImage(head.body), validator: validatorOf(head) };
  if (head.totalBytes !== undefined) {
    try {
      return { facts: inspectImage(head.body, head.totalBytes), validator: validatorOf(head) };
    } catch (error) {
      if (!(error instanceof IncompleteImageError)) throw error;
    }
  }
  const whole = await readWholeImage(head.url, options);
  return { facts: inspectImage(whole.body), validator: validatorOf(whole) };
}

/** The whole file (for its content hash, or when its size is not announced), never more than 10 MB. */
async function readWholeImage(url: string, options: MediaFetchOptions) {
  const response = await fetchMedia(url, { maxBytes: MAX_IMAGE_BYTES, rejectAbove: MAX_IMAGE_BYTES }, options);
  refuseAnnouncedOversize(response);
  if (response.truncated) throw new ImageRuleError(`is larger than the 10 MB limit (reading stopped at ${MAX_IMAGE_BYTES.toLocaleString('en-US')} bytes)`);
  return response;
}

/** The sha256 of the image's bytes (read whole): only needed when two images could be the same file. */
export async function imageUrlContentHash(url: string, options: MediaFetchOptions): Promise<{ facts: string; validator?: string }> {
  const whole = await readWholeImage(url, options);
  return { facts: contentHash(whole.body), validator: validatorOf(whole) };
}
