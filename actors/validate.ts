import { BadRequestError, ValidationError } from './errors.ts';
import type { ActorEvent, ResolvedActorType } from './types.ts';

export function validateKey(def: ResolvedActorType, key: string): void {
  if (!def.keyPattern.test(key)) {
    throw new BadRequestError(`key must match ${def.keyPattern.source}`, { field: 'key' });
  }
}

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,200}$/;

export function validateIdempotencyKey(key: string): void {
  if (!IDEMPOTENCY_KEY.test(key)) {
    throw new BadRequestError('Idempotency-Key must be 1-200 printable ASCII characters', { field: 'Idempotency-Key' });
  }
}

/** Checks an event from outside against the type's schema; returns it with parsed fields. */
export function validateEvent(def: ResolvedActorType, input: unknown): ActorEvent {
  if (!input || typeof input !== 'object' || Array.isArray(input)) {
    throw new ValidationError('the event must be a JSON object with a "type"', { field: 'body' });
  }
  const type = (input as Record<string, unknown>).type;
  const payload = ownFields(input as Record<string, unknown>, 'type');
  if (typeof type !== 'string' || !type) throw new ValidationError('"type" is required and must be a string', { field: 'type' });
  const schema = Object.hasOwn(def.events, type) ? def.events[type] : undefined;
  if (!schema) {
    const known = Object.keys(def.events).join(', ');
    throw new ValidationError(`event type '${type}' is not accepted by ${def.name} (accepted: ${known})`, { field: 'type' });
  }
  const parsed = schema.safeParse(payload);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.length ? issue.path.join('.') : 'body';
    throw new ValidationError(`${field}: ${issue.message}`, { field });
  }
  // Its fields, then `type`, as `{ ...parsed.data, type }` would.
  const event = ownFields(parsed.data);
  event.type = type;
  return event as ActorEvent;
}

/**
 * A copy of `source`'s own fields but `except`, as `{ ...source }` (or a rest pattern) makes it,
 * at a tenth of their cost here. A `__proto__` key from JSON stays a field (which a strict
 * schema then refuses by name), never the copy's prototype whose fields a schema would read.
 */
function ownFields(source: Record<string, unknown>, except?: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k in source) {
    if (k === except || !Object.hasOwn(source, k)) continue;
    if (k === '__proto__') Object.defineProperty(out, k, { value: source[k], enumerable: true, writable: true, configurable: true });
    else out[k] = source[k];
  }
  return out;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Where a value (an event, a snapshot; `json` is its JSON, and the value is parsed from it when
 * not given) holds text PostgreSQL's jsonb cannot store (a NUL character, or half of a surrogate
 * pair): the dotted path of the first such string or key, undefined when none does. Such a value
 * would fail the whole group commit it is written in, other senders' events too.
 */
export function unstorableText(json: string, value: unknown = undefined): string | undefined {
  // JSON.stringify writes both as \u escapes: JSON without such an escape skips the walk (and,
  // given no value, the parse).
  if (!/\\u(?:0000|d[89a-f])/i.test(json)) return undefined;
  const bad = (text: string) => text.includes('\0') || LONE_SURROGATE.test(text);
  const walk = (value: unknown, path: string): string | undefined => {
    if (typeof value === 'string') return bad(value) ? path || 'body' : undefined;
    if (!value || typeof value !== 'object') return undefined;
    for (const [key, inner] of Object.entries(value)) {
      const at = path ? `${path}.${key}` : key;
      if (bad(key)) return at;
      const found = walk(inner, at);
      if (found) return found;
    }
    return undefined;
  };
  return walk(value === undefined ? JSON.parse(json) : value, '');
}
