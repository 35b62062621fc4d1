import { createHmac } from 'node:crypto';
import type { KlingAuth } from '../config';

const TOKEN_LIFETIME_SECONDS = 1800;
const NOT_BEFORE_SKEW_SECONDS = 5;
/** Re-sign a minute before expiry so a token never lapses mid-request. */
const RENEW_BEFORE_EXPIRY_SECONDS = 60;

const base64url = (value: string | Buffer): string => Buffer.from(value).toString('base64url');

/** Kling's official auth: HS256 JWT {iss: access key, exp: now+1800 s, nbf: now-5 s}, signed with the secret key. */
export function signKlingJwt(accessKey: string, secretKey: string, nowSeconds = Math.floor(Date.now() / 1000)): string {
  const header = base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = base64url(
    JSON.stringify({ iss: accessKey, exp: nowSeconds + TOKEN_LIFETIME_SECONDS, nbf: nowSeconds - NOT_BEFORE_SKEW_SECONDS }),
  );
  const signature = createHmac('sha256', secretKey).update(`${header}.${payload}`).digest('base64url');
  return `${header}.${payload}.${signature}`;
}

export interface AuthorizationSource {
  /** The Authorization header value for the next request. */
  header(): string | undefined;
  /** Drop any cached token (Kling said it expired or is not yet valid). */
  invalidate(): void;
}

export function createAuthorizationSource(auth: KlingAuth): AuthorizationSource {
  if (auth.kind === 'bearer') return { header: () => `Bearer ${auth.apiKey}`, invalidate: () => undefined };
  if (auth.kind === 'sandbox') return { header: () => undefined, invalidate: () => undefined };
  let cached: { token: string; expiresAt: number } | undefined;
  return {
    header() {
      const now = Math.floor(Date.now() / 1000);
      if (!cached || cached.expiresAt - RENEW_BEFORE_EXPIRY_SECONDS <= now) {
        cached = { token: signKlingJwt(auth.accessKey, auth.secretKey, now), expiresAt: now + TOKEN_LIFETIME_SECONDS };
      }
      return `Bearer ${cached.token}`;
    },
    invalidate() {
      cached = undefined;
    },
  };
}
