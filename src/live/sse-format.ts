/**
 * The Server-Sent Events wire format (WHATWG HTML, "server-sent events"), as the task stream writes it
 * and as its clients (the benchmark, the tests) read it.
 */

export interface SseEvent {
  id?: string;
  event?: string;
  data: string;
}

/** One event: `id`, `event` and a single-line `data` (JSON never holds a raw newline). */
export const formatSseEvent = (event: Required<SseEvent>): string => `id: ${event.id}\nevent: ${event.event}\ndata: ${event.data}\n\n`;

export const formatSseComment = (text: string): string => `: ${text}\n\n`;

/** Splits a byte stream into events and comments, whatever the chunk boundaries. */
export class SseParser {
  private buffer = '';

  /** The events and comments completed by this chunk, in order. */
  push(chunk: string): { events: SseEvent[]; comments: string[] } {
    this.buffer += chunk;
    const events: SseEvent[] = [];
    const comments: string[] = [];
    let end: number;
    while ((end = this.buffer.indexOf('\n\n')) >= 0) {
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      const event: Partial<SseEvent> = {};
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) {
          comments.push(line.slice(1).trim());
          continue;
        }
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'data') event.data = event.data === undefined ? value : `${event.data}\n${value}`;
        else if (field === 'id' || field === 'event') event[field] = value;
      }
      if (event.data !== undefined) events.push(event as SseEvent);
    }
    return { events, comments };
  }
}
