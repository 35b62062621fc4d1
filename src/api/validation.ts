import type { z } from 'zod';
import { AppError, type FieldError } from '../errors';

/** zod issues as the `errors` list of a problem+json answer: a dotted field path and a sentence. */
export function toFieldErrors(error: z.ZodError): FieldError[] {
  return error.issues.map((issue) => {
    // A missing required field would otherwise read "Invalid input: expected string, received undefined".
    const missing = issue.code === 'invalid_type' && /received undefined/.test(issue.message);
    return { path: issue.path.map(String).join('.'), message: missing ? 'is required' : issue.message };
  });
}

/** Parses `input` with `schema`, or throws a 400 naming every bad field. */
export function parseOrThrow<S extends z.ZodType>(schema: S, input: unknown, what: string): z.infer<S> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const errors = toFieldErrors(parsed.error);
  const summary = errors.map((e) => (e.path ? `${e.path}: ${e.message}` : e.message)).join('; ');
  throw new AppError('VALIDATION_FAILED', `Invalid ${what}: ${summary}`, { errors });
}
