import { problemExamples, klingErrorExample, succeededTaskExample } from './openapi-examples';
import { DOCUMENTED_ROUTES, type DocumentedRoute } from './openapi-operations';
import { componentSchemas, ref, type JsonSchema } from './openapi-schemas';

/** Express's `/v1/tasks/:task_id` is OpenAPI's `/v1/tasks/{task_id}`. */
export const toOpenApiPath = (expressPath: string): string => expressPath.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

const PATH_PARAMETERS: Record<string, string> = {
  task_id: 'Our task id (`tsk_…`)',
  external_task_id: 'Your external_task_id',
  id: 'Our task id or your external_task_id',
};

const pathParameters = (expressPath: string): JsonSchema[] =>
  [...expressPath.matchAll(/:([A-Za-z0-9_]+)/g)].map(([, name]) => ({
    name,
    in: 'path',
    required: true,
    description: PATH_PARAMETERS[name!] ?? name,
    schema: { type: 'string' },
  }));

function paths(routes: DocumentedRoute[]): Record<string, Record<string, JsonSchema>> {
  const result: Record<string, Record<string, JsonSchema>> = {};
  for (const { method, path, operation } of routes) {
    const parameters = [...pathParameters(path), ...((operation.parameters as JsonSchema[] | undefined) ?? []), { $ref: '#/components/parameters/RequestId' }];
    (result[toOpenApiPath(path)] ??= {})[method] = { ...operation, parameters };
  }
  return result;
}

const problemResponse = (description: string, example: unknown, extra: JsonSchema = {}) => ({
  description,
  ...extra,
  content: { 'application/problem+json': { schema: ref('Problem'), example } },
});

const DESCRIPTION = `Dependable creation of Kling "advanced custom elements": submit over REST, get a task id at once,
then poll by task id or your own external_task_id, or be notified at your callback_url.

* **Auth:** \`Authorization: Bearer <api_key>\` on /v1 and /kling (keys come from \`npm run cli -- keys create\`).
* **Errors** on /v1 are \`application/problem+json\` (RFC 9457) with a stable \`code\`; validation errors list every bad
  field in \`errors: [{ path, message }]\`. /kling answers in Kling's envelope \`{ code, message, request_id }\`.
* **Request ids:** send \`X-Request-Id\` (or get a generated one); it comes back in the answer's \`X-Request-Id\` header,
  in every log line about the request, and as \`request_id\` on /kling.`;

let cached: JsonSchema | undefined;

/** The OpenAPI 3.1 document, built once from the route table and the zod schemas. */
export function buildOpenApiDocument(): JsonSchema {
  cached ??= {
    openapi: '3.1.0',
    info: { title: 'kling-element-tracker', version: '0.1.0', description: DESCRIPTION },
    servers: [{ url: '/' }],
    tags: [
      { name: 'Tasks', description: 'The task API' },
      { name: 'Kling-compatible', description: "The same tasks under Kling's own paths and envelope: change only the base URL to /kling" },
      { name: 'Webhooks', description: "Kling's callbacks to this service" },
      { name: 'Operations', description: 'Health, readiness, metrics, documentation and the queue dashboard' },
    ],
    paths: paths(DOCUMENTED_ROUTES),
    webhooks: {
      taskStatusChanged: {
        post: {
          summary: 'Sent to your callback_url on every status change',
          description:
            'Signed per Standard Webhooks with your tenant\'s whsec_ secret (tasks created on /kling get Kling\'s bare task object, unsigned). Retried on non-2xx or timeout; `webhook-id` stays the same across retries.',
          parameters: [
            { name: 'webhook-id', in: 'header', required: true, schema: { type: 'string' } },
            { name: 'webhook-timestamp', in: 'header', required: false, schema: { type: 'string' } },
            { name: 'webhook-signature', in: 'header', required: false, schema: { type: 'string' } },
          ],
          requestBody: { content: { 'application/json': { schema: ref('Task'), example: succeededTaskExample } } },
          responses: { '2XX': { description: 'Delivered; anything else is retried' } },
        },
      },
    },
    components: {
      schemas: componentSchemas(),
      parameters: {
        RequestId: {
          name: 'X-Request-Id',
          in: 'header',
          required: false,
          description: 'Your id for this request (letters, digits and ._:@/+=-, at most 128); echoed back, else generated',
          schema: { type: 'string', maxLength: 128 },
        },
      },
      securitySchemes: {
        apiKey: { type: 'http', scheme: 'bearer', description: 'An API key from `npm run cli -- keys create --tenant <name>`' },
        callbackToken: { type: 'apiKey', in: 'query', name: 'token', description: 'The per-task HMAC token in the callback_url we give Kling' },
        adminToken: { type: 'http', scheme: 'bearer', description: 'ADMIN_TOKEN' },
        adminCookie: { type: 'apiKey', in: 'cookie', name: 'ket_admin', description: 'Set by opening /admin/queues?token=<ADMIN_TOKEN>' },
      },
      responses: {
        Problem: problemResponse('An error (problem+json)', problemExamples.notCancelable),
        ValidationFailed: problemResponse('The request is invalid; `errors` names every bad field', problemExamples.validation),
        Unauthorized: problemResponse('Authorization missing, or the key is unknown or revoked', problemExamples.unauthorized, {
          headers: { 'WWW-Authenticate': { schema: { type: 'string' } } },
        }),
        TaskNotFound: problemResponse('No such task for this API key', problemExamples.notFound),
        ServiceUnavailable: problemResponse('The database is unreachable; retry after Retry-After seconds', problemExamples.unavailable, {
          headers: { 'Retry-After': { schema: { type: 'integer' } } },
        }),
        InternalError: problemResponse('Unexpected error (details only in the log)', {
          ...problemExamples.unavailable,
          type: 'https://kling-element-tracker.dev/problems/internal',
          title: 'Internal server error',
          status: 500,
          detail: 'An unexpected error occurred; it has been logged',
          code: 'INTERNAL',
        }),
        KlingError: {
          description: "Kling's error envelope: 400/1200 bad JSON, 400/1201 validation, 401/1001–1002 auth, 404/1202–1203 not found, 500/5000, 503/5001",
          content: { 'application/json': { schema: ref('KlingError'), example: klingErrorExample } },
        },
      },
    },
  };
  return cached;
}
