/**
 * The part of mp4box (GPAC's MP4 parser) the video check uses. The package ships its own types only
 * under `exports`, which this project's node10 module resolution does not read.
 */
declare module 'mp4box' {
  export class MP4BoxBuffer extends ArrayBuffer {
    fileStart: number;
    static fromArrayBuffer(buffer: ArrayBufferLike, fileStart: number): MP4BoxBuffer;
  }
  export interface Track {
    track_width: number;
    track_height: number;
    video?: { width: number; height: number };
  }
  export interface Movie {
    duration: number;
    timescale: number;
    brands: string[];
    videoTracks: Track[];
  }
  export interface ISOFile {
    onReady?: (info: Movie) => void;
    onError?: (module: string, message: string) => void;
    /** Parses the buffer; returns the file position it needs next. */
    appendBuffer(buffer: MP4BoxBuffer, last?: boolean): number;
    flush(): void;
  }
  export function createFile(): ISOFile;
  export const Log: { setLogLevel(level: unknown): void; error: unknown };
}
