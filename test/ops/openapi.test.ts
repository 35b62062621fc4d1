import SwaggerParser from '@apidevtools/swagger-parser';
import { createImageTaskExample, createVideoTaskExample, queuedTaskExample, succeededTaskExample, problemExamples } from '../../src/api/openapi/openapi-examples';
import { toOpenApiPath } from '../../src/api/openapi/openapi-document';
import { problemSchema } from '../../src/api/error-middleware';
import { createTaskRequestSchema } from '../../src/tasks/task-request';
import { taskViewSchema } from '../../src/tasks/task-view';
import { registeredRoutes } from '../helpers/express-routes';
import { startTestService, type TestService } from '../helpers/test-service';

const ADMIN_TOKEN = 'admin-token-for-openapi-test';

type Document = { openapi: string; paths: Record<string, Record<string, { security?: unknown[]; responses: Record<string, unknown> }>>; components: { schemas: Record<string, { properties?: Record<string, unknown> }> } };

describe('OpenAPI document and docs page', () => {
  let service: TestService;
  let document: Document;

  beforeAll(async () => {
    // ADMIN_TOKEN on, so every optional route is mounted and must be documented.
    service = await startTestService({ workers: false, env: { ADMIN_TOKEN } });
    const response = await service.http.get('/openapi.json');
    expect(response.status).toBe(200);
    document = response.body;
  });
  afterAll(() => service.stop());

  test('when /openapi.json is fetched, then it is a valid OpenAPI 3.1 document', async () => {
    expect(document.openapi).toMatch(/^3\.1\./);

    // validate() dereferences in place: give it a copy.
    await expect(SwaggerParser.validate(structuredClone(document) as never)).resolves.toBeDefined();
  });

  test('when a route is registered on the app, then the document describes it (and describes no route the app lacks)', () => {
    const registered = registeredRoutes(service.app);
    const documented = Object.entries(document.paths).flatMap(([path, operations]) => Object.keys(operations).map((method) => `${method} ${path}`));

    const undocumented = registered
      .filter((route) => (route.method === 'mount' ? !(toOpenApiPath(route.path) in document.paths) : !documented.includes(`${route.method} ${toOpenApiPath(route.path)}`)))
      .map((route) => `${route.method} ${route.path}`);
    const registeredKeys = registered.map((route) => `${route.method} ${toOpenApiPath(route.path)}`);
    const mounts = registered.filter((route) => route.method === 'mount').map((route) => toOpenApiPath(route.path));
    const phantom = documented.filter((key) => !registeredKeys.includes(key) && !mounts.includes(key.split(' ')[1]!));

    expect(registered.length).toBeGreaterThan(15);
    expect(undocumented).toEqual([]);
    expect(phantom).toEqual([]);
  });

  test('when the document describes the create request, then it is the zod schema the route validates with', () => {
    const documented = document.components.schemas.CreateTaskRequest!;

    expect(Object.keys(documented.properties ?? {}).sort()).toEqual(Object.keys(createTaskRequestSchema.shape).sort());
    expect(documented).toMatchObject({ additionalProperties: false, required: expect.arrayContaining(['element_name', 'element_description', 'reference_type']) });
    expect(documented.properties!.element_name).toMatchObject({ type: 'string', maxLength: 20 });
  });

  test('when the document shows examples, then they pass the same schemas as real requests and answers', () => {
    expect(createTaskRequestSchema.safeParse(createImageTaskExample).success).toBe(true);
    expect(createTaskRequestSchema.safeParse(createVideoTaskExample).success).toBe(true);
    expect(taskViewSchema.safeParse(queuedTaskExample).success).toBe(true);
    expect(taskViewSchema.safeParse(succeededTaskExample).success).toBe(true);
    for (const example of Object.values(problemExamples)) expect(problemSchema.safeParse(example).success).toBe(true);
  });

  test('when an operation needs an API key, then it says bearer auth, and its errors are problem+json with errors[{path,message}]', () => {
    const create = document.paths['/v1/tasks']!.post!;

    expect(create.security).toEqual([{ apiKey: [] }]);
    expect(create.responses['400']).toEqual({ $ref: '#/components/responses/ValidationFailed' });
    expect(document.components.schemas.Problem!.properties).toMatchObject({
      errors: { type: 'array', items: { type: 'object', properties: { path: { type: 'string' }, message: { type: 'string' } } } },
    });
    expect(JSON.stringify(document)).toContain('"application/problem+json"');
  });

  test('when /docs is opened, then it is an HTML page whose scripts and styles all come from this server', async () => {
    const page = await service.http.get('/docs');

    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    const assets = [...page.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((match) => match[1]!);
    expect(assets.length).toBeGreaterThanOrEqual(3);
    for (const asset of assets) {
      expect(asset).toMatch(/^\/docs\//);
      const loaded = await service.http.get(asset);
      expect(loaded.status).toBe(200);
      expect(loaded.body.length ?? loaded.text.length).toBeGreaterThan(0);
    }
    const init = await service.http.get('/docs/assets/docs-init.js');
    expect(init.text).toContain("url: '/openapi.json'");
    expect(init.text).toContain('validatorUrl: null');
  });
});
