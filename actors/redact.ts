export const REDACTED = '[redacted]';

/** Copies `context` with the named fields replaced, at any depth. */
export function redact(context: unknown, sensitive: Set<string>): Record<string, unknown> {
  if (!context || typeof context !== 'object') return {};
  return walk(context, sensitive) as Record<string, unknown>;
}

function walk(value: unknown, sensitive: Set<string>): unknown {
  if (Array.isArray(value)) return value.map((v) => walk(v, sensitive));
  if (!value || typeof value !== 'object') return value;
  // Actor refs and other class instances are not data.
  if (Object.getPrototypeOf(value) !== Object.prototype) return undefined;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = sensitive.has(k) ? REDACTED : walk(v, sensitive);
  return out;
}

/** `{a: {b: 'c'}}` → `'a.b.c'`; parallel regions are joined with `,`. */
export function stateName(value: unknown): string {
  if (typeof value === 'string') return value;
  if (!value || typeof value !== 'object') return '';
  const parts = Object.entries(value as Record<string, unknown>).map(([k, v]) => {
    const inner = stateName(v);
    return inner ? `${k}.${inner}` : k;
  });
  return parts.length === 1 ? parts[0]! : `(${parts.join(',')})`;
}
