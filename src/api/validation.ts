import type { z } from 'zod';
import { AppError, type FieldError } from '../errors';

/** zod issues as the `errors` list of a problem+json answer: a dotted field path and a sentence. */
export function toFieldErrors(error: z.ZodError): FieldError[] {
  return error.issues.flatMap((issue) => {
    const path = issue.path.map(String);
    // zod reports unknown keys on the enclosing object (path "" at the top level, under that object's own
    // error message); name each unknown field instead.
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({ path: [...path, key].join('.'), message: 'is not a known field' }));
    }
    // A missing required field would otherwise read "Invalid input: expected string, received undefined",
    // or the schema's custom message for a wrong type ("must be a string"). `input` is there when parsed
    // with `reportInput` (parseOrThrow does).
    const missing =
      (issue.code === 'invalid_type' || issue.code === 'invalid_value') &&
      (('input' in issue && issue.input === undefined) || /received undefined/.test(issue.message));
    return [{ path: path.join('.'), message: missing ? 'is required' : issue.message }];
  });
}

/** Parses `input` with `schema`, or throws a 400 naming every bad field. */
export function parseOrThrow<S extends z.ZodType>(schema: S, input: unknown, what: string): z.infer<S> {
  const parsed = schema.safeParse(input, { reportInput: true });
  if (parsed.success) return parsed.data;
  const errors = toFieldErrors(parsed.error);
  const summary = errors.map((e) => (e.path ? `${e.path}: ${e.message}` : e.message)).join('; ');
  throw new AppError('VALIDATION_FAILED', `Invalid ${what}: ${summary}`, { errors });
}
