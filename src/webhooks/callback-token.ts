import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Each task's callback_url carries an HMAC of its task id, so only Kling (which we told the URL) can
 * report on that task, and a leaked URL exposes one task, not all of them.
 */
export function createCallbackTokens(signingSecret: string) {
  const tokenFor = (taskId: string): string =>
    createHmac('sha256', signingSecret).update(`kling-callback:${taskId}`).digest('base64url');
  return {
    tokenFor,
    /** Constant-time comparison, so response timing reveals nothing about the expected token. */
    verify(taskId: string, token: unknown): boolean {
      if (typeof token !== 'string') return false;
      const expected = Buffer.from(tokenFor(taskId));
      const given = Buffer.from(token);
      return given.length === expected.length && timingSafeEqual(given, expected);
    },
    callbackUrl(publicBaseUrl: string, taskId: string): string {
      return `${publicBaseUrl}/webhooks/kling/${encodeURIComponent(taskId)}?token=${tokenFor(taskId)}`;
    },
  };
}

export type CallbackTokens = ReturnType<typeof createCallbackTokens>;
