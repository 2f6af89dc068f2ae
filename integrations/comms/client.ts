import type { z } from 'zod';
import {
  CommsError,
  CommsProtocolError,
  CommsRateLimitedError,
  CommsRejectedError,
  CommsUnavailableError,
  parseRetryAfter,
} from './errors.ts';
import { CONSULTATION_LINK_TEMPLATE, MessageAccepted, RoomCreated, type RoomKind } from './schemas.ts';

export type { RoomKind } from './schemas.ts';

export interface CommsClientOptions {
  /** e.g. `http://127.0.0.1:4030` or `https://comms.example/api`. */
  baseUrl: string;
  /** Hard limit for one request, from sending it to having read the whole body. */
  timeoutMs?: number;
  fetch?: typeof globalThis.fetch;
  /** Clock for Retry-After HTTP-dates. */
  now?: () => number;
}

export interface ConsultationLink {
  /** The patient's email address. */
  to: string;
  /** The room URL (or our page that leads to it). */
  link: string;
  consultationId: string;
}

export interface CommsClient {
  /**
   * Creates a chat or video room for a consultation. The same `idempotencyKey` always gives the
   * same room, so a retry after a lost answer does not open a second one.
   */
  createRoom(kind: RoomKind, consultationId: string, idempotencyKey: string, signal?: AbortSignal): Promise<RoomCreated>;
  /** Queues the consultation-link mail. The same `idempotencyKey` never mails twice. */
  sendLink(message: ConsultationLink, idempotencyKey: string, signal?: AbortSignal): Promise<MessageAccepted>;
}

/**
 * The provider's HTTP API. Every failure is a `CommsError` whose class says whether to retry
 * (with the same key), except an abort by the caller's own signal, which rethrows the caller's
 * reason. The client sends each request once: retries and pacing are the caller's decision.
 *
 * Keys should be derived from what the work is, not made up per attempt, e.g.
 * `consultation:${id}:room` and `consultation:${id}:link-mail`.
 *
 * @example
 * const comms = createCommsClient({ baseUrl: sim.url });
 * const room = await comms.createRoom('video', id, `consultation:${id}:room`);
 * await comms.sendLink({ to: email, link: room.url, consultationId: id }, `consultation:${id}:link-mail`);
 */
export function createCommsClient({ baseUrl, timeoutMs = 5000, fetch = globalThis.fetch, now = Date.now }: CommsClientOptions): CommsClient {
  const base = new URL(baseUrl).href.replace(/\/+$/, '');
  if (!(timeoutMs > 0)) throw new RangeError('timeoutMs must be positive');

  function createRoom(kind: RoomKind, consultationId: string, idempotencyKey: string, signal?: AbortSignal): Promise<RoomCreated> {
    return post('/rooms', { kind, consultationId }, 201, RoomCreated, idempotencyKey, signal);
  }

  function sendLink({ to, link, consultationId }: ConsultationLink, idempotencyKey: string, signal?: AbortSignal): Promise<MessageAccepted> {
    const body = { to, template: CONSULTATION_LINK_TEMPLATE, link, consultationId };
    return post('/messages', body, 202, MessageAccepted, idempotencyKey, signal);
  }

  async function post<S extends z.ZodType>(
    path: string,
    payload: unknown,
    expected: number,
    schema: S,
    idempotencyKey: string,
    callerSignal: AbortSignal | undefined,
  ): Promise<z.output<S>> {
    // fetch would reject a key that is not a valid header value with a TypeError, which would
    // then look like a network failure (retryable). It is our bug: say so at once.
    if (!/^[\x21-\x7e]{1,255}$/.test(idempotencyKey)) throw new RangeError('idempotencyKey must be 1-255 visible ASCII characters');
    // A clearable timer rather than AbortSignal.timeout(): the latter stays alive (with its link
    // to a long-lived caller signal) until it fires, whether or not the request is long done.
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new DOMException('comms request timed out', 'TimeoutError')), timeoutMs);
    const signal = callerSignal ? AbortSignal.any([deadline.signal, callerSignal]) : deadline.signal;
    try {
      const res = await fetch(`${base}${path}`, {
        method: 'POST',
        headers: { accept: 'application/json', 'content-type': 'application/json', 'idempotency-key': idempotencyKey },
        body: JSON.stringify(payload),
        signal,
      });
      // Read every body, error answers included, so the connection can go back to the pool.
      const text = await res.text();
      if (res.status === expected) return parseBody(path, res.status, text, schema);
      throw statusError(path, res, now());
    } catch (err) {
      if (err instanceof CommsError) throw err;
      if (callerSignal?.aborted) throw callerSignal.reason;
      if (deadline.signal.aborted) throw new CommsUnavailableError(path, `timed out after ${timeoutMs} ms`, { cause: err });
      // fetch rejects with TypeError for resets, refused connections and cut-off bodies.
      throw new CommsUnavailableError(path, networkCode(err), { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  return { createRoom, sendLink };
}

function parseBody<S extends z.ZodType>(path: string, status: number, text: string, schema: S): z.output<S> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new CommsProtocolError(path, ['body is not JSON'], { status });
  }
  const parsed = schema.safeParse(json);
  if (parsed.success) return parsed.data;
  // Paths and codes only: zod's messages can quote the values received.
  const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.code}`);
  throw new CommsProtocolError(path, issues, { status });
}

function statusError(path: string, res: Response, now: number): CommsError {
  const status = res.status;
  if (status === 429) return new CommsRateLimitedError(path, parseRetryAfter(res.headers.get('retry-after'), now));
  if (status >= 500 || status === 408) return new CommsUnavailableError(path, String(status), { status });
  if (status >= 400) return new CommsRejectedError(path, status);
  // A 2xx other than the documented one, or a redirect: the contract names neither.
  return new CommsProtocolError(path, [`unexpected status ${status}`], { status });
}

/** A short, data-free description of a network failure, e.g. `ECONNREFUSED`. */
function networkCode(err: unknown): string {
  const cause = err instanceof Error ? (err.cause as { code?: unknown } | undefined) : undefined;
  const code = cause && typeof cause.code === 'string' ? cause.code : undefined;
  return code ?? (err instanceof Error ? err.name : 'network error');
}
