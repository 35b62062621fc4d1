import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import { Webhook } from 'standardwebhooks';
import type { AttemptOutcome } from '../db/delivery-repository';
import { guardedLookup, isForbiddenAddress } from './safe-address';

export interface WebhookMessage {
  url: string;
  /** Standard Webhooks `webhook-id`: the same on every retry of one notification. */
  id: string;
  body: string;
  /** The tenant's `whsec_…` secret; undefined sends the body unsigned (Kling-style notifications). */
  secret?: string;
}

export interface SendOptions {
  timeoutMs: number;
  allowPrivate: boolean;
}

/** Only the start of a receiver's answer is kept, for the delivery record. */
const MAX_ERROR_BODY_CHARS = 200;

/**
 * POSTs one notification and reports what happened; never throws. A 2xx answer is success; anything
 * else (status, timeout, refused address) is a failed attempt the caller may retry.
 */
export function sendWebhook(message: WebhookMessage, options: SendOptions): Promise<AttemptOutcome & { durationMs: number }> {
  const started = Date.now();
  const finish = (outcome: AttemptOutcome) => ({ ...outcome, durationMs: Date.now() - started });
  return new Promise((resolve) => {
    let url: URL;
    try {
      url = new URL(message.url);
    } catch {
      return resolve(finish({ ok: false, httpStatus: null, error: 'invalid URL' }));
    }
    const host = url.hostname.replace(/^\[|\]$/g, '');
    // IP literals skip DNS, so the guarded lookup never sees them.
    if (!options.allowPrivate && isIP(host) && isForbiddenAddress(host)) {
      return resolve(finish({ ok: false, httpStatus: null, error: `${host} is a private, loopback or link-local address` }));
    }
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'kling-element-tracker-webhooks',
      'webhook-id': message.id,
    };
    if (message.secret) {
      const timestamp = new Date();
      headers['webhook-timestamp'] = String(Math.floor(timestamp.getTime() / 1000));
      headers['webhook-signature'] = new Webhook(message.secret).sign(message.id, timestamp, message.body);
    }
    const transport = url.protocol === 'https:' ? https : http;
    const request = transport.request(
      url,
      { method: 'POST', headers, lookup: guardedLookup(options.allowPrivate), timeout: options.timeoutMs },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          if (text.length < MAX_ERROR_BODY_CHARS) text += chunk;
        });
        response.on('end', () => {
          const status = response.statusCode ?? 0;
          const ok = status >= 200 && status < 300;
          resolve(finish({ ok, httpStatus: status, error: ok ? null : `HTTP ${status}${text ? `: ${text.slice(0, MAX_ERROR_BODY_CHARS)}` : ''}` }));
        });
        response.on('error', (error) => resolve(finish({ ok: false, httpStatus: status(response), error: error.message })));
      },
    );
    request.on('timeout', () => request.destroy(new Error(`no answer within ${options.timeoutMs} ms`)));
    request.on('error', (error) => resolve(finish({ ok: false, httpStatus: null, error: error.message })));
    request.end(message.body);
  });
}

const status = (response: http.IncomingMessage): number | null => response.statusCode ?? null;
