import { createHash } from 'node:crypto';
import { crc32, deflateSync } from 'node:zlib';
import { encode as encodeJpeg } from 'jpeg-js';

/**
 * Real image files of chosen sizes for the media rules: PNGs written chunk by chunk (IHDR, IDAT, IEND)
 * and JPEGs from the jpeg-js encoder. `label` tints the pixels, so different labels give different bytes.
 */

const tint = (label: string): [number, number, number] => {
  const digest = createHash('sha256').update(label).digest();
  return [digest[0]!, digest[1]!, digest[2]!];
};

function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const typeAndData = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typeAndData));
  return Buffer.concat([length, typeAndData, crc]);
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** An 8-bit RGB PNG, every row filter 0, in one IDAT. */
export function pngImage(width: number, height: number, label = 'png'): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.writeUInt8(8, 8); // bit depth
  header.writeUInt8(2, 9); // colour type: RGB
  const [r, g, b] = tint(label);
  const row = Buffer.alloc(1 + width * 3);
  for (let x = 0; x < width; x++) row.set([r, (g + x) & 0xff, b], 1 + x * 3);
  const pixels = Buffer.concat(Array.from({ length: height }, () => row));
  return Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', header), pngChunk('IDAT', deflateSync(pixels)), pngChunk('IEND', Buffer.alloc(0))]);
}

export function jpegImage(width: number, height: number, label = 'jpeg'): Buffer {
  const [r, g, b] = tint(label);
  const data = Buffer.alloc(width * height * 4);
  for (let i = 0; i < width * height; i++) data.set([r, (g + (i % width)) & 0xff, b, 0xff], i * 4);
  return encodeJpeg({ data, width, height }, 80).data;
}

const cache = new Map<string, string>();
const memo = (key: string, make: () => Buffer): string => {
  let value = cache.get(key);
  if (value === undefined) cache.set(key, (value = make().toString('base64')));
  return value;
};

/** A valid 320×320 PNG as raw base64 (what Kling takes); distinct per label. */
export const pngBase64 = (label: string, width = 320, height = 320): string => memo(`png:${label}:${width}x${height}`, () => pngImage(width, height, label));

/** A valid 320×320 JPEG as raw base64; distinct per label. */
export const jpegBase64 = (label: string, width = 320, height = 320): string => memo(`jpeg:${label}:${width}x${height}`, () => jpegImage(width, height, label));
