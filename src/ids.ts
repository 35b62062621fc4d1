import { randomBytes, randomFillSync } from 'node:crypto';
import { monotonicFactory } from 'ulid';

/**
 * ulid's default PRNG asks the CSPRNG for one byte per character (16 calls per id); this draws the same
 * crypto-strength bytes from a pool refilled 4 KiB at a time (it showed in the API's CPU profile).
 */
const randomPool = Buffer.alloc(4096);
let randomOffset = randomPool.length;
const pooledRandom = (): number => {
  if (randomOffset >= randomPool.length) {
    randomFillSync(randomPool);
    randomOffset = 0;
  }
  return randomPool[randomOffset++]! / 256;
};

const nextUlid = monotonicFactory(pooledRandom);

/** Task ids sort by creation time (ULID), so "newest first" is an index scan on the primary key. */
export const newTaskId = (): string => `tsk_${nextUlid()}`;
export const newTenantId = (): string => `ten_${nextUlid()}`;
export const newApiKeyId = (): string => `key_${nextUlid()}`;
/** Also the Standard Webhooks message id; sortable, so deliveries of one task go out in creation order. */
export const newDeliveryId = (): string => `msg_${nextUlid()}`;

/** URL-safe random string with `bytes` bytes of entropy. */
export const randomToken = (bytes: number): string => randomBytes(bytes).toString('base64url');
