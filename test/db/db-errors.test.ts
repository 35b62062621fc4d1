import { Prisma } from '../../src/generated/prisma/client';
import { isDatabaseUnavailable } from '../../src/db/db-errors';

/**
 * Errors seen for real in test/faults/postgres-outage.test.ts and rate-limit-storm.test.ts that used to
 * end as 500 INTERNAL instead of 503 + Retry-After.
 */

test('when a pooled pg client lost its connection mid-transaction ("…is not queryable", no code), then it counts as the database being unavailable', () => {
  expect(isDatabaseUnavailable(new Error('Client has encountered a connection error and is not queryable'))).toBe(true);
});

test('when Prisma cannot start a transaction within maxWait (P2028, pool exhausted), then it counts as the database being unavailable', () => {
  const error = new Prisma.PrismaClientKnownRequestError('\nInvalid `prisma.task.create()` invocation:\n\n\nTransaction API error: Unable to start a transaction in the given time.', {
    code: 'P2028',
    clientVersion: 'test',
    meta: { modelName: 'Task' },
  });
  expect(isDatabaseUnavailable(error)).toBe(true);
});

test('when the error is about the query itself, then it does not count as the database being unavailable', () => {
  expect(isDatabaseUnavailable(new Error('column "x" does not exist'))).toBe(false);
  const unique = new Prisma.PrismaClientKnownRequestError('Unique constraint failed', { code: 'P2002', clientVersion: 'test' });
  expect(isDatabaseUnavailable(unique)).toBe(false);
});
