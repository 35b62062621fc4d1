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

/*
 * MP4/MOV files built box by box (ISO/IEC 14496-12): ftyp, moov (mvhd, one video trak with tkhd, mdhd,
 * hdlr "vide", an avc1 sample entry and empty sample tables) and an mdat of chosen size. No frames are
 * encoded — only the container's metadata, which is what the checks read.
 */

const u32 = (value: number): Buffer => {
  const buffer = Buffer.alloc(4);
  buffer.writeUInt32BE(value >>> 0);
  return buffer;
};
const u16 = (value: number): Buffer => {
  const buffer = Buffer.alloc(2);
  buffer.writeUInt16BE(value & 0xffff);
  return buffer;
};
const box = (type: string, ...payload: Buffer[]): Buffer => {
  const body = Buffer.concat(payload);
  return Buffer.concat([u32(8 + body.length), Buffer.from(type, 'latin1'), body]);
};
const fullBox = (type: string, version: number, flags: number, ...payload: Buffer[]): Buffer => box(type, u32((version << 24) | flags), ...payload);
const IDENTITY_MATRIX = Buffer.concat([0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000].map(u32));

export interface VideoOptions {
  width: number;
  height: number;
  durationS: number;
  /** `mov` writes a QuickTime brand ("qt  "); default `mp4`. */
  container?: 'mp4' | 'mov';
  /** Bytes of (meaningless) media data; default 64 KiB. */
  mdatBytes?: number;
  /** Put the moov box after the media data, as many encoders do (readers then need the file's end). */
  moovAtEnd?: boolean;
}

export function videoFile(options: VideoOptions): Buffer {
  const timescale = 1000;
  const duration = Math.round(options.durationS * timescale);
  const ftyp = options.container === 'mov' ? box('ftyp', Buffer.from('qt  '), u32(0x200), Buffer.from('qt  ')) : box('ftyp', Buffer.from('isom'), u32(0x200), Buffer.from('isomiso2avc1mp41'));
  const mvhd = fullBox('mvhd', 0, 0, u32(0), u32(0), u32(timescale), u32(duration), u32(0x00010000), u16(0x0100), Buffer.alloc(10), IDENTITY_MATRIX, Buffer.alloc(24), u32(2));
  const tkhd = fullBox('tkhd', 0, 3, u32(0), u32(0), u32(1), u32(0), u32(duration), Buffer.alloc(8), u16(0), u16(0), u16(0), u16(0), IDENTITY_MATRIX, u32(options.width * 0x10000), u32(options.height * 0x10000));
  const mdhd = fullBox('mdhd', 0, 0, u32(0), u32(0), u32(timescale), u32(duration), u16(0x55c4), u16(0));
  const hdlr = fullBox('hdlr', 0, 0, u32(0), Buffer.from('vide'), Buffer.alloc(12), Buffer.from('VideoHandler\0'));
  const avc1 = box('avc1', Buffer.alloc(6), u16(1), Buffer.alloc(16), u16(options.width), u16(options.height), u32(0x00480000), u32(0x00480000), u32(0), u16(1), Buffer.alloc(32), u16(0x18), u16(0xffff));
  const stbl = box(
    'stbl',
    fullBox('stsd', 0, 0, u32(1), avc1),
    fullBox('stts', 0, 0, u32(0)),
    fullBox('stsc', 0, 0, u32(0)),
    fullBox('stsz', 0, 0, u32(0), u32(0)),
    fullBox('stco', 0, 0, u32(0)),
  );
  const minf = box('minf', fullBox('vmhd', 0, 1, Buffer.alloc(8)), box('dinf', fullBox('dref', 0, 0, u32(1), fullBox('url ', 0, 1))), stbl);
  const moov = box('moov', mvhd, box('trak', tkhd, box('mdia', mdhd, hdlr, minf)));
  const mdat = box('mdat', Buffer.alloc(options.mdatBytes ?? 64 * 1024, 0x5a));
  return options.moovAtEnd ? Buffer.concat([ftyp, mdat, moov]) : Buffer.concat([ftyp, moov, mdat]);
}
