import { readFileSync } from 'node:fs';

/**
 * The API's own view of Kling's callbacks, from its request log lines (LOG_LEVEL info): how long each
 * callback took from the moment the API received it until it answered. The status change is committed
 * (and so visible to any GET) before the answer is sent, so this is the service's share of callback →
 * visible; the fake Kling's measurement adds its own sending, the network and its GETs.
 */
export function callbackAnswerTimesMs(apiLogFile: string, sinceEpochMs: number): number[] {
  let text: string;
  try {
    text = readFileSync(apiLogFile, 'utf8');
  } catch {
    return [];
  }
  const times: number[] = [];
  for (const line of text.split('\n')) {
    // Cheap filter first: the file holds every request of the run.
    if (!line.includes('"/webhooks/kling/')) continue;
    try {
      const record = JSON.parse(line) as { time?: number; msg?: string; responseTime?: number; req?: { method?: string; url?: string } };
      if (record.msg !== 'request completed' || record.req?.method !== 'POST' || (record.time ?? 0) < sinceEpochMs) continue;
      if (typeof record.responseTime === 'number') times.push(record.responseTime);
    } catch {
      // Not a log line.
    }
  }
  return times;
}
