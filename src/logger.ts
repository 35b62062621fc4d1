import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * Secrets and media never reach the log: keys, tokens and the request body's images are censored.
 * Paths are pino redact paths (https://getpino.io/#/docs/redaction).
 */
const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'req.headers["webhook-signature"]',
  'req.query.token',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'authorization',
  'apiKey',
  'api_key',
  '*.api_key',
  'token',
  '*.token',
  'secret',
  'webhookSecret',
  'webhook_secret',
  '*.webhook_secret',
  'adminToken',
  '*.element_image_list',
  'request.element_image_list',
];

/** Query parameters that carry credentials: Kling's callback token, the admin login link. */
const SECRET_QUERY_PARAM = /([?&](?:token|api_key|apikey|access_token|secret)=)[^&#]*/gi;

/** A URL as it may be logged: credentials in its query string are replaced. */
export const redactUrl = (url: string): string => url.replace(SECRET_QUERY_PARAM, '$1[redacted]');

/** Long runs of base64 (images sent inline) are replaced by their length wherever they appear. */
const BASE64_BLOB = /^(data:[\w/+.-]+;base64,)?[A-Za-z0-9+/\r\n]+={0,2}$/;
const MIN_BLOB_CHARS = 256;
const MAX_SCAN_DEPTH = 6;

/** The value with long base64 runs replaced; the same object when it has none (most lines), so nothing is copied. */
function redactBlobs(value: unknown, depth: number): unknown {
  if (typeof value === 'string') {
    return value.length >= MIN_BLOB_CHARS && BASE64_BLOB.test(value) ? `[base64 redacted: ${value.length} chars]` : value;
  }
  if (depth >= MAX_SCAN_DEPTH || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    value.forEach((item, index) => {
      const redacted = redactBlobs(item, depth + 1);
      if (redacted !== item) (copy ??= [...value])[index] = redacted;
    });
    return copy ?? value;
  }
  // Only plain objects: errors, buffers, requests are left to their serializers.
  if (Object.getPrototypeOf(value) !== Object.prototype) return value;
  let copy: Record<string, unknown> | undefined;
  for (const key in value) {
    const item = (value as Record<string, unknown>)[key];
    const redacted = redactBlobs(item, depth + 1);
    if (redacted !== item) (copy ??= { ...(value as Record<string, unknown>) })[key] = redacted;
  }
  return copy ?? value;
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

export function createLogger(options: LoggerOptions): Logger {
  const pretty = options.pretty && !options.destination && prettyAvailable();
  return pino(
    {
      name: options.name ?? 'kling-element-tracker',
      level: options.level,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      formatters: { log: (object) => redactBlobs(object, 0) as Record<string, unknown> },
      ...(pretty ? { transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l' } } } : {}),
    },
    options.destination,
  );
}
