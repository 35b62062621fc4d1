import { readFileSync } from 'node:fs';
import type { CallbackSend } from './fake-kling';

/**
 * One completed request from the API's request log: when the API received it (epoch ms: the line's time
 * less the request's own time), its own time, its URL.
 */
export interface LoggedRequest {
  receivedAt: number;
  responseTime: number;
  url: string;
}

/**
 * The API's own view of Kling's callbacks, from its request log lines (LOG_LEVEL info). Each callback's
 * time from the moment the API received it until it answered is the service's share of callback →
 * visible (the status change is committed, and so visible to any GET, before the answer is sent); the
 * fake Kling's measurement adds its own sending, the network and its GETs.
 */
export function loggedCallbacks(apiLogFile: string, sinceEpochMs: number): LoggedRequest[] {
  return requestLines(apiLogFile, { method: 'POST', pathPrefix: '/webhooks/kling/', sinceEpochMs });
}

/** When the API's router received each callback (epoch ms), by the callback URL's path, earliest first. */
export function callbackArrivals(callbacks: LoggedRequest[]): Map<string, number[]> {
  const arrivals = new Map<string, number[]>();
  for (const { receivedAt, url } of callbacks) {
    const path = url.split('?')[0]!;
    const list = arrivals.get(path) ?? [];
    list.push(receivedAt);
    arrivals.set(path, list);
  }
  for (const list of arrivals.values()) list.sort((a, b) => a - b);
  return arrivals;
}

/**
 * Callback sent (by the fake Kling) → received by the API's router, ms, for callbacks sent on a kept-alive
 * connection and on a new one apart: the wait before the API handles a callback at all, which is where
 * callbacks on new connections lose their time. The n-th callback sent to a path is matched with the n-th
 * arrival there (a task's callbacks go one after another); a callback with no arrival logged is left out.
 */
export function callbackSentToArrivalMs(sends: CallbackSend[], arrivals: Map<string, number[]>): { kept: number[]; new: number[] } {
  const result = { kept: [] as number[], new: [] as number[] };
  const matched = new Map<string, number>();
  for (const send of [...sends].sort((a, b) => a.sentAt - b.sentAt)) {
    const index = matched.get(send.path) ?? 0;
    matched.set(send.path, index + 1);
    const arrival = arrivals.get(send.path)?.[index];
    if (arrival !== undefined) (send.reused ? result.kept : result.new).push(Math.max(0, arrival - send.sentAt));
  }
  return result;
}

/**
 * How long the API took to answer each `method` request whose path starts with `pathPrefix`, received within
 * the window: its own share of what a client measured (the client adds its sending, the network and its
 * own event loop's delays).
 */
export function answerTimesMs(apiLogFile: string, window: RequestWindow): number[] {
  return requestLines(apiLogFile, window).map((line) => line.responseTime);
}

interface RequestWindow {
  method: string;
  pathPrefix: string;
  sinceEpochMs: number;
  untilEpochMs?: number;
}

/**
 * The request log's completed `method` requests whose path starts with `pathPrefix`, received by the API
 * after the window's start and by its end (the log line's time less the request's own time). By when the
 * line was written instead, a request answered just before the window began could count in it: the API
 * writes the line once the answer has left, which can be after the client has read it.
 */
function requestLines(apiLogFile: string, window: RequestWindow): LoggedRequest[] {
  const needle = `"${window.pathPrefix}`;
  const until = window.untilEpochMs ?? Number.POSITIVE_INFINITY;
  let text: string;
  try {
    text = readFileSync(apiLogFile, 'utf8');
  } catch {
    return [];
  }
  const lines: LoggedRequest[] = [];
  for (const line of text.split('\n')) {
    // Cheap filter first: the file holds every request of the run.
    if (!line.includes(needle)) continue;
    try {
      const record = JSON.parse(line) as { time?: number; msg?: string; responseTime?: number; req?: { method?: string; url?: string } };
      if (record.msg !== 'request completed' || record.req?.method !== window.method || typeof record.responseTime !== 'number') continue;
      const receivedAt = (record.time ?? 0) - record.responseTime;
      if (receivedAt > window.sinceEpochMs && receivedAt <= until) lines.push({ receivedAt, responseTime: record.responseTime, url: record.req.url ?? '' });
    } catch {
      // Not a log line.
    }
  }
  return lines;
}
