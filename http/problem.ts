import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { NotAcceptedError, RuntimeError, UnavailableError } from '../actors/errors.ts';

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  field?: string;
  instance?: string;
  [extra: string]: unknown;
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** An HTTP-level failure with a field, for validation done in handlers. */
export class ProblemError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly field?: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export interface ProblemInput {
  status: number;
  detail: string;
  field?: string | undefined;
  [extra: string]: unknown;
}

export function problemResponse(c: Context, p: ProblemInput, headers: Record<string, string> = {}): Response {
  const body: Problem = { type: 'about:blank', title: TITLES[p.status] ?? 'Error', ...p, instance: c.get('requestId') };
  return new Response(JSON.stringify(body), { status: p.status, headers: { 'content-type': 'application/problem+json', ...headers } });
}

/** The one place errors become responses: runtime errors by class, anything else a bare 500. */
export function toProblem(err: unknown, c: Context): Response {
  if (err instanceof ProblemError) return problemResponse(c, { status: err.status, detail: err.message, field: err.field, ...err.extra });
  if (err instanceof UnavailableError) {
    const seconds = Math.max(1, Math.ceil(err.retryAfterMs / 1000));
    return problemResponse(c, { status: 503, detail: err.message }, { 'retry-after': String(seconds) });
  }
  if (err instanceof NotAcceptedError) {
    return problemResponse(c, { status: 409, detail: err.message, field: 'type', state: err.state, seq: err.seq });
  }
  if (err instanceof RuntimeError) return problemResponse(c, { status: err.status, detail: err.message, field: err.field });
  if (err instanceof HTTPException) return problemResponse(c, { status: err.status, detail: err.message || TITLES[err.status] || 'error' });
  return problemResponse(c, { status: 500, detail: 'internal error; see the server log for this request id' });
}
