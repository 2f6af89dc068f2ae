import type { Context } from 'hono';
import type { ServerResponse } from 'node:http';
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

/** The field a validation issue is about: its path, else the unknown keys, else `fallback`. */
export function issueField(issue: z.core.$ZodIssue, fallback: string): string {
  return issue.path.join('.') || (issue.code === 'unrecognized_keys' ? issue.keys.join(',') : fallback);
}

/** Checks `value` against `schema`; the first issue is a `status` problem naming its field. */
export function check<S extends z.ZodType>(value: unknown, schema: S, status: number, fallback = 'body'): z.output<S> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const field = issueField(issue, fallback);
  throw new ProblemError(status, issue.message.includes(field) ? issue.message : `${field}: ${issue.message}`, field);
}

/** Reads a JSON body (415, 400 as `readJson`) and checks it: the first issue is a `status` problem naming its field. */
export async function parseBody<S extends z.ZodType>(c: Context, schema: S, status = 400): Promise<z.output<S>> {
  return check(await readJson(c), schema, status);
}

/** Validates query parameters; the first bad one is named. */
export function parseQuery<S extends z.ZodType>(c: Context, schema: S): z.output<S> {
  return check(c.req.query(), schema, 400, 'query');
}

/** Epoch ms as ISO 8601, null for none. */
export const iso = (t: number | null | undefined) => (t == null ? null : new Date(t).toISOString());

export const encodeCursor = (value: string | number) => Buffer.from(String(value)).toString('base64url');

export function decodeCursor(cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined;
  const value = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!value || encodeCursor(value) !== cursor) throw new ProblemError(400, 'cursor is not one this API handed out', 'cursor');
  return value;
}

/**
 * Sets a response header. Served by @hono/node-server, it goes on the Node response, which
 * merges it into whatever response the handler returns; through Hono it would cost a web
 * `Headers` object per response, and the copy of it the server makes to write it. Without a
 * Node response (`app.request` in tests) it goes through Hono.
 */
export function setHeader(c: Context, name: string, value: string): void {
  const outgoing = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
  if (outgoing) outgoing.setHeader(name, value);
  else c.header(name, value);
}
