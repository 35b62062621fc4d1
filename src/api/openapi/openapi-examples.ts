/** Examples shown in the OpenAPI document (and its docs page). Realistic values, no real credentials. */

export const EXAMPLE_TASK_ID = 'tsk_01KB2Z6Q3W4E5R6T7Y8V9X0Y1Z';

export const createImageTaskExample = {
  element_name: 'Hero',
  element_description: 'A brave hero',
  reference_type: 'image_refer',
  element_image_list: {
    frontal_image: 'https://example.com/hero-front.png',
    refer_images: [{ image_url: 'https://example.com/hero-side.png' }],
  },
  tag_list: [{ tag_id: 'o_102' }],
  callback_url: 'https://client.example.com/hooks/kling',
  external_task_id: 'order-42',
};

export const createVideoTaskExample = {
  element_name: 'Presenter',
  element_description: 'A presenter filmed face on',
  reference_type: 'video_refer',
  element_video_list: { refer_videos: [{ video_url: 'https://example.com/presenter.mp4' }] },
};

export const queuedTaskExample = {
  task_id: EXAMPLE_TASK_ID,
  external_task_id: 'order-42',
  status: 'queued',
  status_message: null,
  upstream_task_id: null,
  request: createImageTaskExample,
  result: null,
  error: null,
  attempts: 0,
  created_at: '2026-01-05T10:00:00.000Z',
  updated_at: '2026-01-05T10:00:00.000Z',
  submitted_at: null,
  completed_at: null,
};

export const succeededTaskExample = {
  ...queuedTaskExample,
  status: 'succeed',
  upstream_task_id: '860012345678901234',
  result: { elements: [{ element_id: '987654321987654321', element_name: 'Hero' }] },
  attempts: 1,
  updated_at: '2026-01-05T10:03:12.000Z',
  submitted_at: '2026-01-05T10:00:01.000Z',
  completed_at: '2026-01-05T10:03:12.000Z',
};

const problemType = (code: string) => `https://kling-element-tracker.dev/problems/${code.toLowerCase().replace(/_/g, '-')}`;

export const problemExamples = {
  validation: {
    type: problemType('VALIDATION_FAILED'),
    title: 'Request validation failed',
    status: 400,
    detail: 'Invalid task: element_name: must not exceed 20 characters; element_image_list: is required when reference_type is "image_refer"',
    code: 'VALIDATION_FAILED',
    errors: [
      { path: 'element_name', message: 'must not exceed 20 characters' },
      { path: 'element_image_list', message: 'is required when reference_type is "image_refer"' },
    ],
  },
  unauthorized: {
    type: problemType('UNAUTHORIZED'),
    title: 'Missing or invalid API key',
    status: 401,
    detail: 'Send your API key as "Authorization: Bearer <api_key>"',
    code: 'UNAUTHORIZED',
  },
  notFound: {
    type: problemType('TASK_NOT_FOUND'),
    title: 'Task not found',
    status: 404,
    detail: `No task "${EXAMPLE_TASK_ID}" for this API key`,
    code: 'TASK_NOT_FOUND',
  },
  conflict: {
    type: problemType('EXTERNAL_TASK_ID_CONFLICT'),
    title: 'external_task_id already used',
    status: 409,
    detail: `external_task_id "order-42" is already used by task ${EXAMPLE_TASK_ID}`,
    code: 'EXTERNAL_TASK_ID_CONFLICT',
    task_id: EXAMPLE_TASK_ID,
    errors: [{ path: 'external_task_id', message: `already used by task ${EXAMPLE_TASK_ID}` }],
  },
  notCancelable: {
    type: problemType('TASK_NOT_CANCELABLE'),
    title: 'Task can no longer be canceled',
    status: 409,
    detail: 'Task is already submitted',
    code: 'TASK_NOT_CANCELABLE',
  },
  unavailable: {
    type: problemType('SERVICE_UNAVAILABLE'),
    title: 'Service temporarily unavailable',
    status: 503,
    detail: 'The database is unreachable right now; retry shortly.',
    code: 'SERVICE_UNAVAILABLE',
  },
};

export const klingTaskExample = {
  task_id: EXAMPLE_TASK_ID,
  task_status: 'succeed',
  task_status_msg: '',
  task_info: { external_task_id: 'order-42' },
  task_result: { elements: [{ element_id: '987654321987654321' }] },
  created_at: 1767607200000,
  updated_at: 1767607392000,
};

export const klingErrorExample = {
  code: 1201,
  message: 'element_name: must not exceed 20 characters',
  request_id: '3f1c2a9e-5b7d-4e8f-9a0b-1c2d3e4f5a6b',
};
