import { z } from 'zod';

/** Kling's wire format for advanced-custom-elements tasks. Only src/upstream knows these shapes. */

export const KLING_TASK_STATUSES = ['submitted', 'processing', 'succeed', 'failed'] as const;
export type KlingTaskStatus = (typeof KLING_TASK_STATUSES)[number];

/** Kling spells success `succeed`; its newer APIs say `succeeded`, accepted as the same thing. */
const klingStatus = z
  .string()
  .transform((value) => (value === 'succeeded' ? 'succeed' : value))
  .pipe(z.enum(KLING_TASK_STATUSES));

/** Element ids are int64 in Kling's docs: JSON numbers beyond 2^53 lose digits, so ids are kept as strings. */
const idString = z.union([z.string(), z.number()]).transform(String);

export const klingTaskSchema = z.looseObject({
  task_id: idString,
  task_status: klingStatus,
  task_status_msg: z.string().nullish(),
  task_info: z.looseObject({ external_task_id: z.string().nullish() }).nullish(),
  task_result: z
    .looseObject({ elements: z.array(z.looseObject({ element_id: idString.optional() })).optional() })
    .nullish(),
  created_at: z.number().nullish(),
  updated_at: z.number().nullish(),
});

export type KlingTask = z.infer<typeof klingTaskSchema>;

export const klingEnvelopeSchema = z.looseObject({
  code: z.number(),
  message: z.string().nullish(),
  request_id: z.string().nullish(),
  data: z.unknown().optional(),
});

/**
 * Quotes big integers before JSON.parse so `element_id: 987654321987654321` keeps every digit.
 * Only bare numbers of 16+ digits after a key are touched; strings and small numbers are left alone.
 */
export function parseJsonKeepingBigIds(text: string): unknown {
  return JSON.parse(text.replace(/("(?:element_id|task_id)"\s*:\s*)(-?\d{16,})/g, '$1"$2"'));
}
