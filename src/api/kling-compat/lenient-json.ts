import { parseTree, printParseErrorCode, type Node, type ParseError } from 'jsonc-parser';
import { AppError } from '../../errors';

/**
 * Kling's own documented request example carries `//` comment lines and, once they are stripped, a
 * trailing comma; clients copied from it must work here. Anything else that is not JSON is refused.
 */
export function parseLenientJson(text: unknown): unknown {
  if (typeof text !== 'string' || text.trim() === '') throw new AppError('INVALID_JSON', 'Request body is empty; send the task as JSON');
  const errors: ParseError[] = [];
  const tree = parseTree(text, errors, { allowTrailingComma: true, disallowComments: false });
  const [first] = errors;
  if (first || !tree) {
    const where = first ? `${printParseErrorCode(first.error)} at ${describeOffset(text, first.offset)}` : 'no value';
    throw new AppError('INVALID_JSON', `Request body is not valid JSON: ${where}`);
  }
  return toValue(tree);
}

function describeOffset(text: string, offset: number): string {
  const before = text.slice(0, offset).split('\n');
  return `line ${before.length}, column ${(before.at(-1)?.length ?? 0) + 1}`;
}

/**
 * Builds the value from the syntax tree. jsonc-parser's own `parse` assigns keys with `obj[key] = …`,
 * so a `"__proto__"` key would replace the object's prototype; defining own properties keeps
 * JSON.parse's semantics (and lets the strict schema name such a key as unknown).
 */
function toValue(node: Node): unknown {
  if (node.type === 'array') return (node.children ?? []).map(toValue);
  if (node.type !== 'object') return node.value;
  const object: Record<string, unknown> = {};
  for (const property of node.children ?? []) {
    const [key, value] = property.children ?? [];
    if (!key || !value) continue;
    Object.defineProperty(object, String(key.value), { value: toValue(value), enumerable: true, writable: true, configurable: true });
  }
  return object;
}
