import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * Secrets and media never reach the log: values under these keys are censored wherever they appear in a
 * logged object (credentials in headers and query strings, keys, tokens, signing secrets, and the
 * request body's images).
 */
const SECRET_KEYS = new Set([
  'authorization',
  'cookie',
  'set-cookie',
  'x-api-key',
  'webhook-signature',
  'apiKey',
  'api_key',
  'token',
  'secret',
  'webhookSecret',
  'webhook_secret',
  'adminToken',
  'element_image_list',
]);
const CENSORED = '[redacted]';

/** Query parameters that carry credentials: Kling's callback token, the admin login link. */
const SECRET_QUERY_PARAM = /([?&](?:token|api_key|apikey|access_token|secret)=)[^&#]*/gi;

/** A URL as it may be logged: credentials in its query string are replaced. */
export const redactUrl = (url: string): string => url.replace(SECRET_QUERY_PARAM, '$1[redacted]');

/** Long runs of base64 (images sent inline) are replaced by their length wherever they appear. */
const BASE64_BLOB = /^(data:[\w/+.-]+;base64,)?[A-Za-z0-9+/\r\n]+={0,2}$/;
const MIN_BLOB_CHARS = 256;
const MAX_SCAN_DEPTH = 6;

/** Objects walked into: plain ones (and the null-prototype ones query strings parse to). */
const isPlainObject = (value: object): boolean => {
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
};

/**
 * The value as it may be logged: secret keys censored, long base64 runs replaced. Returns the same object
 * when there is nothing to change (nearly every line), so nothing is copied. One walk instead of pino's
 * path redaction, which parsed every path and cloned the object on every line (a seventh of the API's
 * allocations under load).
 */
export function censorForLog(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') {
    return value.length >= MIN_BLOB_CHARS && BASE64_BLOB.test(value) ? `[base64 redacted: ${value.length} chars]` : value;
  }
  if (depth >= MAX_SCAN_DEPTH || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    value.forEach((item, index) => {
      const censored = censorForLog(item, depth + 1);
      if (censored !== item) (copy ??= [...value])[index] = censored;
    });
    return copy ?? value;
  }
  // Errors go through their serializer (see createLogger); buffers, requests and the like are not walked.
  if (!isPlainObject(value)) return value;
  let copy: Record<string, unknown> | undefined;
  for (const key in value) {
    const item = (value as Record<string, unknown>)[key];
    const censored = SECRET_KEYS.has(key) && item !== undefined ? CENSORED : censorForLog(item, depth + 1);
    if (censored !== item) (copy ??= { ...(value as Record<string, unknown>) })[key] = censored;
  }
  return copy ?? value;
}

/** pino's error serializer, censored (its result has its own prototype: spread so it is walked). */
function serializeError(error: unknown): unknown {
  const serialized: unknown = pino.stdSerializers.err(error as Error);
  return serialized !== null && typeof serialized === 'object' ? censorForLog({ ...serialized }) : serialized;
}

/** pino-pretty is a development dependency: absent in production images, so never required there. */
function prettyAvailable(): boolean {
  try {
    require.resolve('pino-pretty');
    return true;
  } catch {
    return false;
  }
}

export interface LoggerOptions {
  level: string;
  /** Human-readable output (development only; needs the pino-pretty dev dependency). */
  pretty?: boolean;
  name?: string;
  /** Where the JSON lines go (default stdout); tests pass a stream to read them. */
  destination?: DestinationStream;
}

/**
 * Stdout takes lines in blocks of up to PIPE_BUF (4 KB), not one write per line: at a steady 700
 * creates/s each line was a write handed to libuv's thread pool, 3–4% of the API's busy time (bench).
 * A block of whole lines up to PIPE_BUF is written to a pipe in one piece, so the lines of API processes
 * sharing one stdout never interleave (a single line longer than that is written alone, as before).
 * Lines wait at most LOG_FLUSH_MS; pino writes what is left when the process exits, so only a process
 * killed outright (SIGKILL) loses its last block.
 */
const PIPE_BUF = 4096;
const LOG_FLUSH_MS = 250;

const stdoutInBlocks = (): DestinationStream =>
  pino.destination({ dest: 1, sync: false, minLength: PIPE_BUF - 512, maxWrite: PIPE_BUF, periodicFlush: LOG_FLUSH_MS });

export function createLogger(options: LoggerOptions): Logger {
  const pretty = options.pretty && !options.destination && prettyAvailable();
  return pino(
    {
      name: options.name ?? 'kling-element-tracker',
      level: options.level,
      formatters: { log: (object) => censorForLog(object) as Record<string, unknown> },
      // Runs after formatters.log: an error's own fields (a response body, say) are censored here.
      serializers: { err: serializeError },
      ...(pretty ? { transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l' } } } : {}),
    },
    options.destination ?? (pretty ? undefined : stdoutInBlocks()),
  );
}
