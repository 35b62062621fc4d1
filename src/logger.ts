import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * Secrets and media never reach the log: keys, tokens and the request body's images are censored.
 * Paths are pino redact paths (https://getpino.io/#/docs/redaction).
 */
const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'authorization',
  'apiKey',
  'api_key',
  'token',
  'secret',
  '*.element_image_list',
  'request.element_image_list',
];

/** pino-pretty is a development dependency: absent in production images, so never required there. */
function prettyAvailable(): boolean {
  try {
    require.resolve('pino-pretty');
    return true;
  } catch {
    return false;
  }
}

export function createLogger(options: { level: string; pretty?: boolean; name?: string }): Logger {
  return pino({
    name: options.name ?? 'kling-element-tracker',
    level: options.level,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    ...(options.pretty && prettyAvailable() ? { transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l' } } } : {}),
  });
}
