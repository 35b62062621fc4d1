import { z } from 'zod';
import { createTaskRequestSchema } from '../../tasks/task-request';
import { taskEventViewSchema, taskViewSchema } from '../../tasks/task-view';
import { klingTaskSchema } from '../../upstream/kling-wire';
import { problemSchema } from '../error-middleware';
import { klingCreateRequestSchema } from '../kling-compat/kling-compat-routes';
import { klingFailureSchema, klingSuccessSchema, klingTaskViewSchema } from '../kling-compat/kling-envelope';

/**
 * The OpenAPI components, converted from the zod schemas the routes validate with (requests, in their
 * input form) and the schemas next to the view functions (answers). Nothing here restates a field.
 */

export type JsonSchema = Record<string, unknown>;

/** OpenAPI 3.1 schemas are JSON Schema 2020-12; `$schema` is implied by the document. */
export function toJsonSchema(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const { $schema: _dialect, ...json } = z.toJSONSchema(schema, { io, target: 'draft-2020-12' });
  return json;
}

export const ref = (name: ComponentName): JsonSchema => ({ $ref: `#/components/schemas/${name}` });

/** Answer shapes with no view function of their own. */
const taskPageSchema = z.object({
  data: z.array(taskViewSchema),
  next_cursor: z.string().nullable().meta({ description: 'Pass as `cursor` for the next page; null on the last page' }),
});
const taskEventsSchema = z.object({ data: z.array(taskEventViewSchema) });
const redeliverySchema = z.object({ delivery_id: z.string(), task_id: z.string(), url: z.string() });
const healthSchema = z.object({ status: z.literal('ok') });
const readinessSchema = z.object({
  status: z.enum(['ok', 'unavailable']),
  checks: z.record(z.string(), z.string()).meta({ description: '"ok" or "unavailable: <reason>" per dependency (postgres, redis)' }),
});
const callbackAnswerSchema = z.object({ received: z.literal(true), applied: z.boolean(), status: z.string().optional() });

const COMPONENTS = {
  CreateTaskRequest: [createTaskRequestSchema, 'input'],
  KlingCreateTaskRequest: [klingCreateRequestSchema, 'input'],
  Task: [taskViewSchema, 'output'],
  TaskPage: [taskPageSchema, 'output'],
  TaskEvents: [taskEventsSchema, 'output'],
  Redelivery: [redeliverySchema, 'output'],
  Problem: [problemSchema, 'output'],
  KlingTask: [klingTaskViewSchema, 'output'],
  KlingTaskEnvelope: [klingSuccessSchema(klingTaskViewSchema), 'output'],
  KlingTaskListEnvelope: [klingSuccessSchema(z.array(klingTaskViewSchema)), 'output'],
  KlingError: [klingFailureSchema, 'output'],
  KlingCallback: [klingTaskSchema, 'input'],
  CallbackAnswer: [callbackAnswerSchema, 'output'],
  Health: [healthSchema, 'output'],
  Readiness: [readinessSchema, 'output'],
} as const satisfies Record<string, readonly [z.ZodType, 'input' | 'output']>;

export type ComponentName = keyof typeof COMPONENTS;

export function componentSchemas(): Record<ComponentName, JsonSchema> {
  return Object.fromEntries(
    Object.entries(COMPONENTS).map(([name, [schema, io]]) => [name, toJsonSchema(schema, io)]),
  ) as Record<ComponentName, JsonSchema>;
}

/** A zod object schema (a query string) as OpenAPI `in: query` parameters. */
export function queryParameters(schema: z.ZodObject, descriptions: Record<string, string> = {}): JsonSchema[] {
  const json = toJsonSchema(schema, 'input') as { properties?: Record<string, JsonSchema>; required?: string[] };
  return Object.entries(json.properties ?? {}).map(([name, property]) => ({
    name,
    in: 'query',
    required: json.required?.includes(name) ?? false,
    ...(descriptions[name] ? { description: descriptions[name] } : {}),
    schema: property,
  }));
}
