import { createHash } from 'node:crypto';
import { z } from 'zod';
import { ImageRuleError, inspectImage, isImageUrl, MAX_IMAGE_BYTES, MIN_IMAGE_SIDE_PX, sizeOverLimit } from '../media/image-rules';

/**
 * The create request, validated exactly as Kling documents it (shared/seed). This schema is the only
 * definition of the request type: routes, the worker and the docs all derive from it.
 */

export const ELEMENT_TAG_IDS = ['o_101', 'o_102', 'o_103', 'o_104', 'o_105', 'o_106', 'o_107', 'o_108'] as const;
export const MAX_ELEMENT_NAME_CHARS = 20;
export const MAX_ELEMENT_DESCRIPTION_CHARS = 100;
export const MAX_REFER_IMAGES = 3;
export const MAX_URL_CHARS = 2048;
export const MAX_EXTERNAL_TASK_ID_CHARS = 128;

/** Kling counts characters, not UTF-16 code units: an emoji is one character. */
const charCount = (value: string): number => [...value].length;

const boundedText = (max: number) =>
  z
    .string({ error: 'is required and must be a string' })
    .refine((value) => value.trim().length > 0, 'must not be empty')
    .refine((value) => charCount(value) <= max, `must not exceed ${max} characters`)
    // JSON Schema's maxLength counts code points too, as charCount does.
    .meta({ maxLength: max, description: `Not blank; at most ${max} characters` });

const isHttpUrl = (value: string): boolean => {
  if (!/^https?:\/\//i.test(value) || value.length > MAX_URL_CHARS) return false;
  try {
    const url = new URL(value);
    return Boolean(url.hostname);
  } catch {
    return false;
  }
};

const httpUrl = z
  .string({ error: 'must be a string' })
  .refine(isHttpUrl, `must be an http(s) URL of at most ${MAX_URL_CHARS} characters`)
  .meta({ format: 'uri', maxLength: MAX_URL_CHARS, description: 'An http(s) URL' });

const DATA_URL = /^data:(image\/(?:png|jpe?g));base64,/i;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Kling wants raw base64; a `data:image/…;base64,` prefix sent by a client is removed before storing. */
export const stripDataUrlPrefix = (value: string): string => value.replace(DATA_URL, '');

const base64DecodedBytes = (value: string): number => Math.floor((value.length * 3) / 4) - (value.match(/=+$/)?.[0].length ?? 0);


const imageSource = z.string({ error: 'must be a string' }).superRefine((value, ctx) => {
  if (value.trim() === '') return void ctx.addIssue({ code: 'custom', message: 'must not be empty' });
  if (isImageUrl(value)) {
    if (!isHttpUrl(value)) ctx.addIssue({ code: 'custom', message: `must be a valid http(s) URL of at most ${MAX_URL_CHARS} characters` });
    return;
  }
  if (/^data:/i.test(value) && !DATA_URL.test(value)) {
    return void ctx.addIssue({ code: 'custom', message: 'data URLs must be data:image/png;base64 or data:image/jpeg;base64' });
  }
  const raw = stripDataUrlPrefix(value);
  if (raw.length % 4 !== 0 || !BASE64.test(raw)) {
    return void ctx.addIssue({ code: 'custom', message: 'must be an http(s) URL or a base64-encoded .jpg/.jpeg/.png image' });
  }
  if (base64DecodedBytes(raw) > MAX_IMAGE_BYTES) {
    return void ctx.addIssue({ code: 'custom', message: sizeOverLimit(base64DecodedBytes(raw), MAX_IMAGE_BYTES) });
  }
  // The image is here: check it as Kling will (format by its bytes, size, sides, aspect ratio) now.
  try {
    inspectImage(Buffer.from(raw, 'base64'));
  } catch (error) {
    if (!(error instanceof ImageRuleError)) throw error;
    ctx.addIssue({ code: 'custom', message: error.message });
  }
}).meta({
  description:
    `An http(s) URL (at most ${MAX_URL_CHARS} characters) or a base64-encoded .jpg/.png image, with or without a data:image/…;base64, prefix (stripped before Kling sees it). ` +
    `Either way: .jpg/.jpeg or .png by content, at most 10 MB, both sides at least ${MIN_IMAGE_SIDE_PX} px, aspect ratio between 1:2.5 and 2.5:1 (base64 images are checked in the request; URLs by the worker before submitting, unless MEDIA_PRECHECK=off)`,
});

/**
 * Kling's own examples send `"external_task_id": ""` and document an empty `element_voice_id` as "no
 * voice": for optional text fields an empty string means "not given".
 */
const optionalText = <S extends z.ZodType>(schema: S) =>
  z.preprocess((value) => (value === '' ? undefined : value), schema.optional());

const elementImageList = z.strictObject(
  {
    frontal_image: imageSource,
    refer_images: z
      .array(z.strictObject({ image_url: imageSource }), { error: 'must be an array of { "image_url": … }' })
      .min(1, 'must contain at least 1 reference image')
      .max(MAX_REFER_IMAGES, `must contain at most ${MAX_REFER_IMAGES} reference images`),
  },
  { error: 'must be an object { "frontal_image", "refer_images" }' },
);

const elementVideoList = z.strictObject(
  {
    refer_videos: z
      .array(z.strictObject({ video_url: httpUrl }), { error: 'must be an array of { "video_url": … }' })
      .length(1, 'must contain exactly 1 video'),
  },
  { error: 'must be an object { "refer_videos" }' },
);

/**
 * The seed wants refer images that differ from the frontal one in content: two base64 texts can differ
 * (in the unused bits of their last character) and still carry the same bytes. Different sizes differ
 * without decoding. Image URLs are compared by content in the worker, which fetches them.
 */
function sameBase64Content(a: string, b: string): boolean {
  if (isImageUrl(a) || isImageUrl(b) || base64DecodedBytes(a) !== base64DecodedBytes(b)) return false;
  const digest = (value: string) => createHash('sha256').update(Buffer.from(value, 'base64')).digest('hex');
  return digest(a) === digest(b);
}

export interface CreateTaskRequestSchemaOptions {
  /**
   * Accept a refer image identical to the frontal image. The seed says they "should differ", and /v1
   * enforces it; Kling's own documented example does not, so its compatible surface must accept it.
   */
  allowReferSameAsFrontal?: boolean;
}

/** The request schema; `/v1` uses the strict default (`createTaskRequestSchema`). */
export const buildCreateTaskRequestSchema = ({ allowReferSameAsFrontal = false }: CreateTaskRequestSchemaOptions = {}) =>
  z
    .strictObject({
      element_name: boundedText(MAX_ELEMENT_NAME_CHARS),
      element_description: boundedText(MAX_ELEMENT_DESCRIPTION_CHARS),
      reference_type: z
        .enum(['image_refer', 'video_refer'], { error: 'must be "image_refer" or "video_refer"' })
        .meta({ description: 'image_refer needs element_image_list; video_refer needs element_video_list (and only it may carry element_voice_id)' }),
      element_image_list: elementImageList.optional(),
      element_video_list: elementVideoList.optional(),
      element_voice_id: optionalText(z.string({ error: 'must be a string' }).max(128, 'must not exceed 128 characters')),
      tag_list: z
        .array(
          z.strictObject({
            tag_id: z.enum(ELEMENT_TAG_IDS, { error: `must be one of ${ELEMENT_TAG_IDS.join(', ')}` }),
          }),
          { error: 'must be an array of { "tag_id": … }' },
        )
        .optional(),
      callback_url: optionalText(httpUrl).meta({
        description: 'Your receiver: every status change is POSTed there (Standard Webhooks signed on /v1). Private addresses are refused unless ALLOW_PRIVATE_CALLBACKS',
      }),
      external_task_id: optionalText(
        z
          .string({ error: 'must be a string' })
          .refine((value) => value.trim().length > 0, 'must not be blank')
          .refine((value) => value.length <= MAX_EXTERNAL_TASK_ID_CHARS, `must not exceed ${MAX_EXTERNAL_TASK_ID_CHARS} characters`)
          // eslint-disable-next-line no-control-regex
          .refine((value) => !/[\u0000-\u001f\u007f]/.test(value), 'must not contain control characters'),
      ).meta({
        description: `Your own id for the task (unique per tenant, at most ${MAX_EXTERNAL_TASK_ID_CHARS} characters); query by it at /v1/tasks/by-external-id/{external_task_id}`,
        maxLength: MAX_EXTERNAL_TASK_ID_CHARS,
      }),
    })
    .superRefine((body, ctx) => {
      if (body.reference_type === 'image_refer') {
        if (!body.element_image_list) {
          ctx.addIssue({ code: 'custom', path: ['element_image_list'], message: 'is required when reference_type is "image_refer"' });
        }
        if (body.element_video_list) {
          ctx.addIssue({ code: 'custom', path: ['element_video_list'], message: 'is invalid when reference_type is "image_refer"' });
        }
        if (body.element_voice_id !== undefined) {
          ctx.addIssue({ code: 'custom', path: ['element_voice_id'], message: 'is only supported when reference_type is "video_refer"' });
        }
      }
      if (body.reference_type === 'video_refer' && !body.element_video_list) {
        ctx.addIssue({ code: 'custom', path: ['element_video_list'], message: 'is required when reference_type is "video_refer"' });
      }
      const images = body.element_image_list;
      if (images && !allowReferSameAsFrontal) {
        const frontal = stripDataUrlPrefix(images.frontal_image);
        images.refer_images.forEach((refer, index) => {
          const image = stripDataUrlPrefix(refer.image_url);
          if (image === frontal || sameBase64Content(image, frontal)) {
            ctx.addIssue({
              code: 'custom',
              path: ['element_image_list', 'refer_images', index, 'image_url'],
              message: 'must differ from frontal_image',
            });
          }
        });
      }
    })
    .meta({
      description:
        'Kling\'s create body. Beyond the field rules: image_refer needs element_image_list and no element_video_list or element_voice_id; ' +
        `video_refer needs element_video_list.${allowReferSameAsFrontal ? '' : ' Each refer image must differ from frontal_image.'} Unknown fields are refused.`,
    });

export const createTaskRequestSchema = buildCreateTaskRequestSchema();

export type CreateTaskRequest = z.infer<typeof createTaskRequestSchema>;

/** The part of a request that goes upstream: our callback_url and external_task_id replace the client's. */
export type ElementFields = Omit<CreateTaskRequest, 'callback_url' | 'external_task_id'>;

export function toElementFields(request: CreateTaskRequest): ElementFields {
  const { callback_url: _callback, external_task_id: _external, ...fields } = request;
  if (fields.element_image_list) {
    fields.element_image_list = {
      frontal_image: stripDataUrlPrefix(fields.element_image_list.frontal_image),
      refer_images: fields.element_image_list.refer_images.map((image) => ({ image_url: stripDataUrlPrefix(image.image_url) })),
    };
  }
  return fields;
}
