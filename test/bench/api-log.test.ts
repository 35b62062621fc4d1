import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { answerTimesMs } from '../../bench/api-log';

/**
 * The bench reads the API's own answer times from its request log, for the requests of one measured
 * window. A request belongs to the window by when the API received it, not by when its line was written:
 * the line is written once the answer has left, which can be after the client has read it and started
 * the next run.
 */
describe('the API request log as the bench reads it', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'ket-api-log-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const line = (time: number, responseTime: number, method = 'POST', url = '/v1/tasks') =>
    JSON.stringify({ level: 30, time, msg: 'request completed', req: { method, url }, responseTime });

  test('when a request was received before the window began but its line was written after, then it does not count in the window', () => {
    const since = 1_000_000;
    const file = path.join(dir, 'api.log');
    writeFileSync(
      file,
      [
        line(since + 2, 5), // received 3 ms before the window, logged 2 ms into it
        line(since + 10, 4), // received 6 ms into the window
        line(since + 20, 3, 'GET', '/v1/tasks/tsk_1'), // another method
        'not json',
        line(since + 60, 5), // received after the window's end
      ].join('\n'),
    );

    expect(answerTimesMs(file, { method: 'POST', pathPrefix: '/v1/tasks', sinceEpochMs: since, untilEpochMs: since + 50 })).toEqual([4]);
  });
});
