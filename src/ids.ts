import { randomBytes } from 'node:crypto';
import { monotonicFactory } from 'ulid';

const nextUlid = monotonicFactory();

/** Task ids sort by creation time (ULID), so "newest first" is an index scan on the primary key. */
export const newTaskId = (): string => `tsk_${nextUlid()}`;
export const newTenantId = (): string => `ten_${nextUlid()}`;
export const newApiKeyId = (): string => `key_${nextUlid()}`;
/** Also the Standard Webhooks message id; sortable, so deliveries of one task go out in creation order. */
export const newDeliveryId = (): string => `msg_${nextUlid()}`;

/** URL-safe random string with `bytes` bytes of entropy. */
export const randomToken = (bytes: number): string => randomBytes(bytes).toString('base64url');
