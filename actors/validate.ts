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
  const { type, ...payload } = input as Record<string, unknown>;
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
  return { ...parsed.data, type };
}
