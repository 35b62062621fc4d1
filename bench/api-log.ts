import { readFileSync } from 'node:fs';

/**
 * The API's own view of Kling's callbacks, from its request log lines (LOG_LEVEL info): how long each
 * callback took from the moment the API received it until it answered. The status change is committed
 * (and so visible to any GET) before the answer is sent, so this is the service's share of callback →
 * visible; the fake Kling's measurement adds its own sending, the network and its GETs.
 */
export function callbackAnswerTimesMs(apiLogFile: string, sinceEpochMs: number): number[] {
  return answerTimesMs(apiLogFile, { method: 'POST', pathPrefix: '/webhooks/kling/', sinceEpochMs });
}

/**
 * How long the API took to answer each `method` request whose path starts with `pathPrefix`, logged within the
 * window: its own share of what a client measured (the client adds its sending, the network and its
 * own event loop's delays).
 */
export function answerTimesMs(apiLogFile: string, window: { method: string; pathPrefix: string; sinceEpochMs: number; untilEpochMs?: number }): number[] {
  const needle = `"${window.pathPrefix}`;
  const until = window.untilEpochMs ?? Number.POSITIVE_INFINITY;
  let text: string;
  try {
    text = readFileSync(apiLogFile, 'utf8');
  } catch {
    return [];
  }
  const times: number[] = [];
  for (const line of text.split('\n')) {
    // Cheap filter first: the file holds every request of the run.
    if (!line.includes(needle)) continue;
    try {
      const record = JSON.parse(line) as { time?: number; msg?: string; responseTime?: number; req?: { method?: string; url?: string } };
      const time = record.time ?? 0;
      if (record.msg !== 'request completed' || record.req?.method !== window.method || time < window.sinceEpochMs || time > until) continue;
      if (typeof record.responseTime === 'number') times.push(record.responseTime);
    } catch {
      // Not a log line.
    }
  }
  return times;
}
