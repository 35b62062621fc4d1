import { type ImageFacts, ImageRuleError, inspectImage, MAX_IMAGE_BYTES, sizeOverLimit } from './image-rules';
import { fetchMedia, validatorOf, type MediaFetchOptions } from './media-fetch';

/**
 * An image URL checked as a base64 image is. The whole file is read (at most 10 MB): its content hash is
 * what tells a refer image from the frontal one. A Content-Length past the limit is refused before
 * reading anything; a file of unannounced size is read no further than the limit.
 */
export async function checkImageUrl(url: string, options: MediaFetchOptions): Promise<{ facts: ImageFacts; validator?: string }> {
  const response = await fetchMedia(url, { maxBytes: MAX_IMAGE_BYTES, rejectAbove: MAX_IMAGE_BYTES }, options);
  if (response.totalBytes !== undefined && response.totalBytes > MAX_IMAGE_BYTES) throw new ImageRuleError(sizeOverLimit(response.totalBytes, MAX_IMAGE_BYTES));
  if (response.truncated) throw new ImageRuleError(`is larger than the 10 MB limit (reading stopped at ${MAX_IMAGE_BYTES.toLocaleString('en-US')} bytes)`);
  return { facts: inspectImage(response.body), validator: validatorOf(response) };
}
