import type { Context } from 'hono';
import type { z } from 'zod';
import { ProblemError } from './problem.ts';

/** Reads a JSON body: 415 for another media type, 400 for malformed JSON. */
export async function readJson(c: Context): Promise<unknown> {
  const type = c.req.header('content-type') ?? '';
  if (!/^application\/([\w.+-]+\+)?json\b/i.test(type)) {
    throw new ProblemError(415, 'the body must be application/json', 'Content-Type');
  }
  const text = await c.req.text();
  try {
    return JSON.parse(text);
  } catch (err) {
    // Not the parser's message: it quotes the start of the body, which may hold personal data.
    void err;
    throw new ProblemError(400, 'malformed JSON', 'body');
  }
}

/** Validates query parameters; the first bad one is named. */
export function parseQuery<S extends z.ZodType>(c: Context, schema: S): z.output<S> {
  const parsed = schema.safeParse(c.req.query());
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const field = issue.path.join('.') || 'query';
  throw new ProblemError(400, `${field}: ${issue.message}`, field);
}

export const encodeCursor = (value: string | number) => Buffer.from(String(value)).toString('base64url');

export function decodeCursor(cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined;
  const value = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!value || encodeCursor(value) !== cursor) throw new ProblemError(400, 'cursor is not one this API handed out', 'cursor');
  return value;
}
