import { createFile, Log, MP4BoxBuffer, type Movie } from 'mp4box';
import { sizeOverLimit } from './image-rules';
import { fetchMedia, MediaFetchError, validatorOf, type MediaFetchOptions } from './media-fetch';

/**
 * Kling's rules for the element video (seed: "Video format supports only MP4/MOV. Only supports videos
 * with duration between 3s-8s, aspect ratio of 16:9 or 9:16, and 1080P resolution. … size not exceeding
 * 200MB"), read from the container's metadata (the moov box) with mp4box. With HTTP range requests only
 * the boxes the parser asks for are fetched — the start, then the moov wherever it is — never the media
 * data; a server without ranges is read from the start only until the moov has been parsed.
 */
export const MAX_VIDEO_BYTES = 200 * 1024 * 1024;
export const MIN_VIDEO_SECONDS = 3;
export const MAX_VIDEO_SECONDS = 8;
export const VIDEO_SHORT_SIDE_PX = 1080;
/** 16:9 within 1% (encoders round sides to even numbers). */
const ASPECT_TOLERANCE = 0.01;

const RANGE_CHUNK_BYTES = 256 * 1024;
/** Range requests per video before giving up on finding its metadata. */
const MAX_RANGE_REQUESTS = 16;

Log.setLogLevel(Log.error);

export interface VideoFacts {
  container: 'mp4' | 'mov';
  width: number;
  height: number;
  durationS: number;
  bytes: number;
  /** How many bytes were read to learn this (the point of range requests). */
  bytesRead: number;
}

/** A rule the video breaks, phrased to follow its field path. */
export class VideoRuleError extends Error {}

/** ISO BMFF files start with a box; these are the types a .mp4 or .mov starts with. */
const FIRST_BOX_TYPES = new Set(['ftyp', 'moov', 'mdat', 'free', 'skip', 'wide', 'pnot']);

function containerOf(head: Buffer): 'mp4' | 'mov' {
  const firstBox = head.subarray(4, 8).toString('latin1');
  if (head.length < 12 || !FIRST_BOX_TYPES.has(firstBox)) throw new VideoRuleError('is not an MP4/MOV video (its bytes are not an ISO media container)');
  // QuickTime files say so in their major brand; files without ftyp are QuickTime by convention.
  return firstBox !== 'ftyp' || head.subarray(8, 12).toString('latin1') === 'qt  ' ? 'mov' : 'mp4';
}

/** Feeds byte ranges to mp4box until the moov box has been parsed. Never throws while fed. */
class MetadataReader {
  private readonly file = createFile();
  private movie: Movie | undefined;
  private failure: string | undefined;
  /** The next file position the parser wants. */
  next = 0;

  constructor() {
    this.file.onReady = (movie) => (this.movie = movie);
    this.file.onError = (_module, message) => (this.failure ??= message);
  }

  append(bytes: Buffer, fileStart: number): void {
    if (this.failure || this.movie) return;
    try {
      const copy = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length);
      this.next = this.file.appendBuffer(MP4BoxBuffer.fromArrayBuffer(copy, fileStart));
    } catch (error) {
      this.failure = (error as Error).message;
    }
  }

  /** True once the metadata is known or cannot be (result() then says which). */
  get done(): boolean {
    return this.movie !== undefined || this.failure !== undefined;
  }

  result(): Movie | undefined {
    if (this.failure) throw new VideoRuleError(`its MP4/MOV metadata cannot be read (${this.failure})`);
    return this.movie;
  }
}

function checkRules(movie: Movie, container: VideoFacts['container'], bytes: number, bytesRead: number): VideoFacts {
  const track = movie.videoTracks[0];
  if (!track) throw new VideoRuleError('has no video track');
  const width = Math.round(track.track_width || track.video?.width || 0);
  const height = Math.round(track.track_height || track.video?.height || 0);
  const durationS = movie.timescale ? movie.duration / movie.timescale : 0;
  if (durationS < MIN_VIDEO_SECONDS || durationS > MAX_VIDEO_SECONDS) {
    throw new VideoRuleError(`duration ${Number(durationS.toFixed(2))} s is outside ${MIN_VIDEO_SECONDS}–${MAX_VIDEO_SECONDS} s`);
  }
  const ratio = Math.max(width, height) / Math.max(1, Math.min(width, height));
  if (!width || !height || Math.abs(ratio - 16 / 9) / (16 / 9) > ASPECT_TOLERANCE) {
    throw new VideoRuleError(`${width}×${height} is not 16:9 or 9:16`);
  }
  if (Math.min(width, height) !== VIDEO_SHORT_SIDE_PX) throw new VideoRuleError(`${width}×${height} is not 1080p (1920×1080 or 1080×1920)`);
  return { container, width, height, durationS, bytes, bytesRead };
}

const tooBig = (bytes: number) => new VideoRuleError(sizeOverLimit(bytes, MAX_VIDEO_BYTES));

const NO_METADATA = 'has no readable MP4/MOV metadata (no moov box found)';

export async function checkVideoUrl(url: string, options: MediaFetchOptions): Promise<{ facts: VideoFacts; validator?: string }> {
  const first = await fetchMedia(url, { range: { start: 0, end: RANGE_CHUNK_BYTES - 1 }, maxBytes: RANGE_CHUNK_BYTES, rejectAbove: MAX_VIDEO_BYTES }, options);
  if (first.totalBytes !== undefined && first.totalBytes > MAX_VIDEO_BYTES) throw tooBig(first.totalBytes);
  const container = containerOf(first.body);
  const reader = new MetadataReader();
  reader.append(first.body, 0);
  let bytesRead = first.body.length;
  const rangesWork = first.status === 206 && first.totalBytes !== undefined;
  if (rangesWork) {
    const total = first.totalBytes!;
    for (let requests = 1; !reader.done; requests++) {
      if (reader.next >= total || requests >= MAX_RANGE_REQUESTS) throw new VideoRuleError(NO_METADATA);
      const start = reader.next;
      const part = await fetchMedia(first.url, { range: { start, end: Math.min(total, start + RANGE_CHUNK_BYTES) - 1 }, maxBytes: RANGE_CHUNK_BYTES }, options);
      if (part.status !== 206) throw new MediaFetchError('unavailable', `the media server stopped answering byte ranges (HTTP ${part.status})`);
      bytesRead += part.body.length;
      reader.append(part.body, start);
    }
    return { facts: checkRules(reader.result()!, container, total, bytesRead), validator: validatorOf(first) };
  }
  if (!reader.done) {
    // No range support, and the metadata is not at the start: read the file again from the start, only
    // until the parser has the metadata (the media data after it is never read).
    const streaming = new MetadataReader();
    const whole = await fetchMedia(
      first.url,
      {
        maxBytes: MAX_VIDEO_BYTES + 1,
        discardBody: true,
        onChunk: (chunk, offset) => {
          streaming.append(chunk, offset);
          return streaming.done;
        },
      },
      options,
    );
    if (whole.bytesRead > MAX_VIDEO_BYTES) throw tooBig(whole.bytesRead);
    bytesRead += whole.bytesRead;
    const movie = streaming.result();
    if (!movie) throw new VideoRuleError(NO_METADATA);
    return { facts: checkRules(movie, container, whole.totalBytes ?? whole.bytesRead, bytesRead), validator: validatorOf(whole) };
  }
  return { facts: checkRules(reader.result()!, container, first.totalBytes ?? first.body.length, bytesRead), validator: validatorOf(first) };
}
