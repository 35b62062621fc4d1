import { listElementsQuerySchema } from '../kling-compat/kling-compat-routes';
import { MAX_PREFER_WAIT_S } from '../../live/wait-for-task';
import { idempotencyKeySchema, listTasksQuerySchema } from '../routes/task-routes';
import { createImageTaskExample, createVideoTaskExample, klingTaskExample, problemExamples, queuedTaskExample, succeededTaskExample } from './openapi-examples';
import { queryParameters, ref, toJsonSchema, type JsonSchema } from './openapi-schemas';

/**
 * Every route the API serves, with its OpenAPI operation. Paths are written as Express registers them
 * (`/v1/tasks/:task_id`); a test compares this table with the routes the app really has.
 */
export interface DocumentedRoute {
  method: 'get' | 'post';
  path: string;
  operation: JsonSchema;
}

const json = (schema: JsonSchema, examples?: Record<string, unknown>) => ({
  'application/json': { schema, ...(examples ? { examples: Object.fromEntries(Object.entries(examples).map(([name, value]) => [name, { value }])) } : {}) },
});
const answer = (description: string, schema: JsonSchema, examples?: Record<string, unknown>) => ({ description, content: json(schema, examples) });
const responseRef = (name: string) => ({ $ref: `#/components/responses/${name}` });

const API_KEY = [{ apiKey: [] }];
const TASKS = ['Tasks'];
const KLING = ['Kling-compatible'];
const OPERATIONS = ['Operations'];

/** The errors every authenticated /v1 route may answer. */
const v1Errors = { '401': responseRef('Unauthorized'), '500': responseRef('InternalError'), '503': responseRef('ServiceUnavailable') };
const klingErrors = { '400': responseRef('KlingError'), '401': responseRef('KlingError'), '404': responseRef('KlingError'), '500': responseRef('KlingError'), '503': responseRef('KlingError') };

const taskAnswer = (description: string) => answer(description, ref('Task'), { succeeded: succeededTaskExample });

/** RFC 7240 `Prefer: wait=N`, on the routes that answer with one task. */
const PREFER_WAIT = {
  name: 'Prefer',
  in: 'header' as const,
  required: false,
  description: `\`wait=N\` (seconds, at most ${MAX_PREFER_WAIT_S}): hold the answer until the task is terminal or N seconds have passed, then answer with the task as it stands (\`Preference-Applied: wait=N\`)`,
  schema: { type: 'string', example: 'wait=30' },
};
const PREFERENCE_APPLIED = { 'Preference-Applied': { description: '`wait=N` when Prefer: wait was honoured', schema: { type: 'string' } } };

export const DOCUMENTED_ROUTES: DocumentedRoute[] = [
  {
    method: 'post',
    path: '/v1/tasks',
    operation: {
      operationId: 'createTask',
      tags: TASKS,
      summary: 'Submit a task',
      description:
        "Kling's create body, validated as Kling documents it. The task is stored before anything else happens and answered at once with 202; a worker submits it to Kling. " +
        'Send `Idempotency-Key` to make retries safe: the same key and body answer with the first task (`Idempotent-Replayed: true`), the same key with another body is 422.',
      security: API_KEY,
      parameters: [
        {
          name: 'Idempotency-Key',
          in: 'header',
          required: false,
          description: 'Your unique key for this create; remembered for 24 hours',
          schema: toJsonSchema(idempotencyKeySchema, 'input'),
        },
        PREFER_WAIT,
      ],
      requestBody: { required: true, content: json(ref('CreateTaskRequest'), { image: createImageTaskExample, video: createVideoTaskExample }) },
      responses: {
        '202': {
          ...answer('Accepted and stored', ref('Task'), { queued: queuedTaskExample }),
          headers: {
            Location: { description: 'The task: /v1/tasks/{task_id}', schema: { type: 'string' } },
            'Idempotent-Replayed': { description: '`true` when an earlier request with the same Idempotency-Key created the task', schema: { type: 'string' } },
            ...PREFERENCE_APPLIED,
          },
        },
        '400': responseRef('ValidationFailed'),
        '409': answer('external_task_id already used by another of your tasks', ref('Problem'), { conflict: problemExamples.conflict }),
        '413': responseRef('Problem'),
        '415': responseRef('Problem'),
        '422': responseRef('Problem'),
        '429': {
          ...answer('A per-tenant limit (TENANT_MAX_SUBMITS_PER_MINUTE, TENANT_MAX_IN_FLIGHT) is reached: nothing was stored', ref('Problem')),
          headers: { 'Retry-After': { description: 'Seconds until a submit may succeed', schema: { type: 'integer' } } },
        },
        ...v1Errors,
      },
    },
  },
  {
    method: 'get',
    path: '/v1/tasks',
    operation: {
      operationId: 'listTasks',
      tags: TASKS,
      summary: 'List your tasks, newest first',
      security: API_KEY,
      parameters: queryParameters(listTasksQuerySchema, { cursor: 'next_cursor of the previous page' }),
      responses: { '200': answer('A page of tasks', ref('TaskPage')), '400': responseRef('ValidationFailed'), ...v1Errors },
    },
  },
  {
    method: 'get',
    path: '/v1/tasks/by-external-id/:external_task_id',
    operation: {
      operationId: 'getTaskByExternalId',
      tags: TASKS,
      summary: 'Read a task by your external_task_id',
      security: API_KEY,
      parameters: [PREFER_WAIT],
      responses: { '200': { ...taskAnswer('The task'), headers: PREFERENCE_APPLIED }, '404': responseRef('TaskNotFound'), ...v1Errors },
    },
  },
  {
    method: 'get',
    path: '/v1/tasks/:task_id',
    operation: {
      operationId: 'getTask',
      tags: TASKS,
      summary: 'Read a task',
      security: API_KEY,
      parameters: [PREFER_WAIT],
      responses: { '200': { ...taskAnswer('The task'), headers: PREFERENCE_APPLIED }, '404': responseRef('TaskNotFound'), ...v1Errors },
    },
  },
  {
    method: 'get',
    path: '/v1/tasks/:task_id/stream',
    operation: {
      operationId: 'streamTask',
      tags: TASKS,
      summary: "Watch a task live (Server-Sent Events)",
      description:
        'At once the task as it stands, then one `task` event (the same JSON as GET) per status change, in order, from whichever process committed it; a `: heartbeat` comment every 15 s (SSE_HEARTBEAT_MS); the stream ends after the terminal state. ' +
        'Event ids are the task\'s updated_at in milliseconds: reconnect with `Last-Event-ID` and the task is sent again only if it has changed since.',
      security: API_KEY,
      parameters: [{ name: 'Last-Event-ID', in: 'header', required: false, description: 'The id of the last event received', schema: { type: 'string' } }],
      responses: {
        '200': { description: '`text/event-stream`: `id: <n>`, `event: task`, `data: <Task JSON>`', content: { 'text/event-stream': { schema: { type: 'string' } } } },
        '404': responseRef('TaskNotFound'),
        ...v1Errors,
      },
    },
  },
  {
    method: 'get',
    path: '/v1/tasks/:task_id/events',
    operation: {
      operationId: 'listTaskEvents',
      tags: TASKS,
      summary: "A task's timeline",
      description: 'Every change and attempt: creation, submit attempts, callbacks and polls (applied or not, and why), notifications to your callback_url.',
      security: API_KEY,
      responses: { '200': answer('The events, oldest first', ref('TaskEvents')), '404': responseRef('TaskNotFound'), ...v1Errors },
    },
  },
  {
    method: 'post',
    path: '/v1/tasks/:task_id/cancel',
    operation: {
      operationId: 'cancelTask',
      tags: TASKS,
      summary: 'Cancel a task that is still queued',
      security: API_KEY,
      responses: {
        '200': taskAnswer('Canceled'),
        '404': responseRef('TaskNotFound'),
        '409': answer('Already being submitted, submitted or finished', ref('Problem'), { notCancelable: problemExamples.notCancelable }),
        ...v1Errors,
      },
    },
  },
  {
    method: 'post',
    path: '/v1/tasks/:task_id/redeliver',
    operation: {
      operationId: 'redeliverNotification',
      tags: TASKS,
      summary: 'Send the latest notification to your callback_url again',
      description: 'Under a new webhook-id; the attempts show in the events.',
      security: API_KEY,
      responses: {
        '202': answer('Queued for delivery', ref('Redelivery')),
        '404': responseRef('TaskNotFound'),
        '409': responseRef('Problem'),
        ...v1Errors,
      },
    },
  },
  {
    method: 'post',
    path: '/kling/v1/general/advanced-custom-elements',
    operation: {
      operationId: 'klingCreateElement',
      tags: KLING,
      summary: "Submit a task in Kling's own format",
      description:
        "The same validation as POST /v1/tasks, in Kling's envelope and error codes. `//` and `/* */` comments and trailing commas are accepted (as in Kling's example), Content-Type is optional, and a refer image may equal the frontal image.",
      security: API_KEY,
      requestBody: { required: true, content: json(ref('KlingCreateTaskRequest'), { image: createImageTaskExample }) },
      responses: { '200': answer('Accepted', ref('KlingTaskEnvelope'), { submitted: { code: 0, message: 'SUCCEED', request_id: '3f1c2a9e-5b7d-4e8f-9a0b-1c2d3e4f5a6b', data: { ...klingTaskExample, task_status: 'submitted', task_result: {} } } }), ...klingErrors },
    },
  },
  {
    method: 'get',
    path: '/kling/v1/general/advanced-custom-elements',
    operation: {
      operationId: 'klingListElements',
      tags: KLING,
      summary: "List tasks in Kling's format, newest first",
      security: API_KEY,
      parameters: queryParameters(listElementsQuerySchema),
      responses: { '200': answer('A page of tasks', ref('KlingTaskListEnvelope')), ...klingErrors },
    },
  },
  {
    method: 'get',
    path: '/kling/v1/general/advanced-custom-elements/:id',
    operation: {
      operationId: 'klingGetElement',
      tags: KLING,
      summary: "Read a task in Kling's format",
      security: API_KEY,
      responses: {
        '200': answer('The task', ref('KlingTaskEnvelope'), { succeeded: { code: 0, message: 'SUCCEED', request_id: '3f1c2a9e-5b7d-4e8f-9a0b-1c2d3e4f5a6b', data: klingTaskExample } }),
        ...klingErrors,
      },
    },
  },
  {
    method: 'post',
    path: '/webhooks/kling/:task_id',
    operation: {
      operationId: 'receiveKlingCallback',
      tags: ['Webhooks'],
      summary: "Kling's callbacks for one task",
      description:
        'The callback_url the worker gives Kling. Duplicate, stale and out-of-order callbacks are answered 200 and change nothing. When KLING_WEBHOOK_SECRET is set, the Standard Webhooks signature headers are checked too.',
      security: [{ callbackToken: [] }],
      requestBody: { required: true, content: json(ref('KlingCallback')) },
      responses: {
        '200': answer('Received (applied or ignored)', ref('CallbackAnswer')),
        '400': responseRef('ValidationFailed'),
        '401': responseRef('Problem'),
        '404': responseRef('TaskNotFound'),
        '500': responseRef('InternalError'),
        '503': responseRef('ServiceUnavailable'),
      },
    },
  },
  {
    method: 'get',
    path: '/healthz',
    operation: { operationId: 'health', tags: OPERATIONS, summary: 'The process is up', responses: { '200': answer('Up', ref('Health')) } },
  },
  {
    method: 'get',
    path: '/readyz',
    operation: {
      operationId: 'readiness',
      tags: OPERATIONS,
      summary: 'Postgres and Redis answer',
      responses: { '200': answer('Ready', ref('Readiness')), '503': answer('A dependency is unreachable (named in checks)', ref('Readiness')) },
    },
  },
  {
    method: 'get',
    path: '/metrics',
    operation: {
      operationId: 'metrics',
      tags: OPERATIONS,
      summary: "Prometheus metrics of this process",
      description: 'Text exposition format. Unauthenticated: expose it only to your monitoring network.',
      responses: { '200': { description: 'Metrics', content: { 'text/plain': { schema: { type: 'string' } } } } },
    },
  },
  {
    method: 'get',
    path: '/openapi.json',
    operation: {
      operationId: 'openapi',
      tags: OPERATIONS,
      summary: 'This document',
      responses: { '200': { description: 'OpenAPI 3.1', content: { 'application/json': { schema: { type: 'object' } } } } },
    },
  },
  {
    method: 'get',
    path: '/docs',
    operation: {
      operationId: 'docs',
      tags: OPERATIONS,
      summary: 'Interactive API documentation (Swagger UI, served locally)',
      responses: { '200': { description: 'HTML page', content: { 'text/html': { schema: { type: 'string' } } } } },
    },
  },
  {
    method: 'get',
    path: '/console',
    operation: {
      operationId: 'console',
      tags: OPERATIONS,
      summary: 'Task console: list, open, cancel and redeliver tasks in a browser',
      description:
        'A static page (with /console/console.js and /console/console.css) that calls this API with the API key typed into it; the key stays in the browser tab (sessionStorage). `/console#task=<task_id>` opens one task.',
      responses: { '200': { description: 'HTML page', content: { 'text/html': { schema: { type: 'string' } } } } },
    },
  },
  {
    method: 'get',
    path: '/admin/queues',
    operation: {
      operationId: 'queueDashboard',
      tags: OPERATIONS,
      summary: 'Queue dashboard (Bull Board)',
      description:
        'Only when ADMIN_TOKEN is set (404 otherwise). Send `Authorization: Bearer <ADMIN_TOKEN>`, or open `/admin/queues?token=<ADMIN_TOKEN>` once in a browser: it sets an HttpOnly cookie and redirects here without the token. The dashboard and its own API live under this path.',
      security: [{ adminToken: [] }, { adminCookie: [] }],
      parameters: [{ name: 'token', in: 'query', required: false, description: 'ADMIN_TOKEN, to log a browser in', schema: { type: 'string' } }],
      responses: {
        '200': { description: 'The dashboard', content: { 'text/html': { schema: { type: 'string' } } } },
        '303': { description: 'Logged in with ?token=: the cookie is set; go to the same page without the token', headers: { 'Set-Cookie': { schema: { type: 'string' } } } },
        '401': responseRef('Problem'),
        '404': responseRef('Problem'),
      },
    },
  },
];
