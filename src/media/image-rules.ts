import { createHash } from 'node:crypto';
import { imageSize } from 'image-size';

/**
 * Kling's rules for element images (seed: "Supported image formats: .jpg / .jpeg / .png. Image file size
 * cannot exceed 10MB. Image dimensions must be at least 300px. Image aspect ratio must be between 1:2.5
 * and 2.5:1."), checked on the bytes themselves, so a bad image is refused at once instead of minutes
 * later by Kling.
 */
export const MAX_IMAGE_BYTES = 10 * 1024 * 1024;
export const MIN_IMAGE_SIDE_PX = 300;
export const MAX_ASPECT_RATIO = 2.5;

export interface ImageFacts {
  format: 'png' | 'jpeg';
  width: number;
  height: number;
  /** The file's size. */
  bytes: number;
}

/** An image is given as an http(s) URL or as base64: the scheme tells them apart. */
export const isImageUrl = (source: string): boolean => /^https?:\/\//i.test(source);

/** Refer images must differ from the frontal image in content, not just in name: compared by this. */
export const contentHash = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** "10,485,761 bytes exceeds the 10 MB limit (10,485,760 bytes)": exact, so a file one byte over says so. */
export const sizeOverLimit = (bytes: number, limitBytes: number): string =>
  `${bytes.toLocaleString('en-US')} bytes exceeds the ${limitBytes / 1024 / 1024} MB limit (${limitBytes.toLocaleString('en-US')} bytes)`;

/** A rule the image breaks, phrased to follow its field path ("…frontal_image: <message>"). */
export class ImageRuleError extends Error {}

/**
 * "3.1:1" or "1:2.6", the wider side as written in the rule. Rounded up to two decimals, so a ratio just
 * past the limit never reads as the limit itself (751×300 is "2.51:1", not "2.5:1").
 */
function ratioText(width: number, height: number): string {
  const ratio = width >= height ? width / height : height / width;
  const text = String(Math.ceil(ratio * 100 - 1e-9) / 100);
  return width >= height ? `${text}:1` : `1:${text}`;
}

const FORMATS: Record<string, ImageFacts['format']> = { png: 'png', jpg: 'jpeg' };

/** The bytes read do not reach the image's dimensions (a JPEG with a large EXIF block, read in part). */
export class IncompleteImageError extends Error {}

/**
 * Format and dimensions from the file's own header (PNG IHDR, JPEG SOF), never from a name or a
 * Content-Type. `bytes` may be the start of the file only (`fileBytes` is then its whole size, and
 * IncompleteImageError says when the start was not enough). Throws ImageRuleError naming the first rule broken.
 */
export function inspectImage(bytes: Uint8Array, fileBytes = bytes.length): ImageFacts {
  if (fileBytes > MAX_IMAGE_BYTES) throw new ImageRuleError(sizeOverLimit(fileBytes, MAX_IMAGE_BYTES));
  let size: ReturnType<typeof imageSize>;
  try {
    size = imageSize(bytes);
  } catch {
    if (bytes.length < fileBytes) throw new IncompleteImageError('the dimensions lie beyond the bytes read');
    throw new ImageRuleError('is not a .jpg/.jpeg or .png image (its bytes are neither)');
  }
  const format = size.type ? FORMATS[size.type] : undefined;
  if (!format) throw new ImageRuleError(`is a ${size.type ?? 'unknown'} image; Kling takes .jpg/.jpeg or .png only`);
  // EXIF orientation may swap the sides; the rules below are symmetric, so it does not matter here.
  const { width, height } = size;
  if (!width || !height) throw new ImageRuleError('has no readable dimensions');
  if (width < MIN_IMAGE_SIDE_PX || height < MIN_IMAGE_SIDE_PX) {
    throw new ImageRuleError(`${width}×${height} px is smaller than ${MIN_IMAGE_SIDE_PX} px on a side`);
  }
  if (Math.max(width, height) / Math.min(width, height) > MAX_ASPECT_RATIO) {
    throw new ImageRuleError(`aspect ratio ${ratioText(width, height)} is outside 1:2.5–2.5:1`);
  }
  return { format, width, height, bytes: fileBytes };
}
