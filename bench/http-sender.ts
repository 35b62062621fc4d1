import { connect, type Socket } from 'node:net';

/**
 * A lean HTTP/1.1 client for the load generator: one request shape, sent again and again over a pool of
 * kept-alive sockets, one request in flight per socket. The request's bytes are built once, and of each
 * answer only the status and the Location header are read.
 *
 * Why not node:http's client: the generator shares the machine's two cores with the server it measures,
 * and node:http cost it 0.10–0.13 ms of CPU per request (bench/README.md, eleventh session), about a third
 * of what the API itself spends at half its peak rate. Every cycle the generator spends is taken from the
 * server under test and shows up in the latencies it reports, for ours and the floor alike.
 */
export interface SentAnswer {
  status: number;
  location: string | undefined;
}

export interface RequestShape {
  host: string;
  port: number;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
}

/** An answer that failed on a kept-alive socket before any of it came back: the server closed an idle socket. */
export class ReusedSocketReset extends Error {}

const HEADER_END = Buffer.from('\r\n\r\n');

/** The request's bytes, built once: request line, headers, body. */
export function requestBytes(shape: RequestShape): Buffer {
  const lines = [`${shape.method} ${shape.path} HTTP/1.1`, `host: ${shape.host}:${shape.port}`, 'connection: keep-alive'];
  for (const [name, value] of Object.entries(shape.headers)) {
    if (!['host', 'connection', 'content-length'].includes(name.toLowerCase())) lines.push(`${name}: ${value}`);
  }
  if (shape.body || shape.method !== 'GET') lines.push(`content-length: ${shape.body?.length ?? 0}`);
  const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
  return shape.body ? Buffer.concat([head, shape.body]) : head;
}

interface ParsedHead {
  status: number;
  location: string | undefined;
  /** Body bytes expected after the head; -1 for a chunked body. */
  contentLength: number;
  close: boolean;
  /** Bytes of the head, its blank line included. */
  headLength: number;
}

/** The status line and the headers the generator needs, once the whole head is in `data`; else undefined. */
export function parseHead(data: Buffer): ParsedHead | undefined {
  const end = data.indexOf(HEADER_END);
  if (end < 0) return undefined;
  const lines = data.toString('latin1', 0, end).split('\r\n');
  const status = Number(lines[0]!.slice(9, 12));
  if (!Number.isInteger(status) || !lines[0]!.startsWith('HTTP/1.')) throw new Error(`not an HTTP answer: ${JSON.stringify(lines[0])}`);
  let location: string | undefined;
  let contentLength = 0;
  let close = false;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'content-length') contentLength = Number(value);
    else if (name === 'transfer-encoding' && value.toLowerCase().includes('chunked')) contentLength = -1;
    else if (name === 'location') location = value;
    else if (name === 'connection' && value.toLowerCase() === 'close') close = true;
  }
  return { status, location, contentLength, close, headLength: end + HEADER_END.length };
}

/**
 * Where a chunked body ends in `data` (which starts at the body), or -1 while it is incomplete. Chunk
 * extensions and trailers are skipped, not read.
 */
export function chunkedBodyEnd(data: Buffer): number {
  let offset = 0;
  for (;;) {
    const lineEnd = data.indexOf('\r\n', offset, 'latin1');
    if (lineEnd < 0) return -1;
    const size = Number.parseInt(data.toString('latin1', offset, lineEnd), 16);
    if (Number.isNaN(size)) throw new Error('bad chunk size in a chunked answer');
    if (size === 0) {
      // The last chunk: trailers, if any, then a blank line.
      const end = data.indexOf(HEADER_END, lineEnd);
      return end < 0 ? -1 : end + HEADER_END.length;
    }
    offset = lineEnd + 2 + size + 2;
    if (offset > data.length) return -1;
  }
}

interface Pending {
  resolve(answer: SentAnswer): void;
  reject(error: Error): void;
}

/** One kept-alive connection: sends the request, reads its answer, then is free again. */
class Connection {
  private buffered: Buffer = Buffer.alloc(0);
  private head: ParsedHead | undefined;
  private pending: Pending | undefined;
  /** Answers completed on this socket: a failure after one is the keep-alive race, not the server's error. */
  private answered = 0;
  private gotBytes = false;
  private closed = false;

  constructor(
    private readonly socket: Socket,
    private readonly onFree: (connection: Connection) => void,
    private readonly onGone: (connection: Connection) => void,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.read(chunk));
    socket.on('error', (error) => this.fail(error));
    socket.on('close', () => this.fail(new Error('socket closed before the answer was complete')));
  }

  send(bytes: Buffer, pending: Pending): void {
    this.pending = pending;
    this.gotBytes = false;
    this.socket.write(bytes);
  }

  destroy(): void {
    this.closed = true;
    this.socket.destroy();
  }

  private read(chunk: Buffer): void {
    this.gotBytes = true;
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    try {
      this.head ??= parseHead(this.buffered);
      if (!this.head) return;
      const body = this.buffered.subarray(this.head.headLength);
      const bodyEnd = this.head.contentLength >= 0 ? (body.length >= this.head.contentLength ? this.head.contentLength : -1) : chunkedBodyEnd(body);
      if (bodyEnd < 0) return;
      if (body.length > bodyEnd) throw new Error('bytes after the answer on a socket with one request in flight');
      const { status, location, close } = this.head;
      const pending = this.pending;
      this.head = undefined;
      this.buffered = Buffer.alloc(0);
      this.pending = undefined;
      this.answered++;
      if (close) this.destroy();
      pending?.resolve({ status, location });
      if (close) this.onGone(this);
      else this.onFree(this);
    } catch (error) {
      this.socket.destroy(error as Error);
    }
  }

  private fail(error: Error): void {
    const wasClosed = this.closed;
    this.closed = true;
    const pending = this.pending;
    this.pending = undefined;
    if (pending) pending.reject(this.answered > 0 && !this.gotBytes ? new ReusedSocketReset(error.message) : error);
    if (!wasClosed) this.onGone(this);
  }
}

/**
 * Up to `connections` kept-alive sockets to one server. `send()` resolves with the status and Location of
 * the answer; a request waits for a free socket when all are busy, as node:http's Agent would have it
 * wait. A request that finds its kept-alive socket closed by the server before any answer came is sent
 * once more on a new one.
 */
export function createHttpSender(shape: RequestShape, connections: number) {
  const bytes = requestBytes(shape);
  const free: Connection[] = [];
  const all = new Set<Connection>();
  const waiting: Array<Pending & { retried: boolean }> = [];
  let closing = false;

  const dispatch = (connection: Connection, pending: Pending & { retried: boolean }): void => {
    connection.send(bytes, {
      resolve: pending.resolve,
      reject: (error) => {
        if (error instanceof ReusedSocketReset && !pending.retried && !closing) enqueue({ ...pending, retried: true });
        else pending.reject(error);
      },
    });
  };

  const onFree = (connection: Connection): void => {
    const next = waiting.shift();
    if (next) dispatch(connection, next);
    else free.push(connection);
  };
  const onGone = (connection: Connection): void => {
    all.delete(connection);
    const index = free.indexOf(connection);
    if (index >= 0) free.splice(index, 1);
    // A request waiting for a socket takes a new one instead (after close() none is waiting).
    const next = closing ? undefined : waiting.shift();
    if (next) enqueue(next);
  };

  function enqueue(pending: Pending & { retried: boolean }): void {
    const idle = free.pop();
    if (idle) return dispatch(idle, pending);
    if (all.size < connections) {
      const connection = new Connection(connect({ host: shape.host, port: shape.port }), onFree, onGone);
      all.add(connection);
      return dispatch(connection, pending);
    }
    waiting.push(pending);
  }

  return {
    send: (): Promise<SentAnswer> =>
      new Promise((resolve, reject) => {
        if (closing) return reject(new Error('sender closed'));
        enqueue({ resolve, reject, retried: false });
      }),
    close(): void {
      closing = true;
      for (const pending of waiting.splice(0)) pending.reject(new Error('sender closed'));
      for (const connection of all) connection.destroy();
      all.clear();
      free.length = 0;
    },
  };
}
