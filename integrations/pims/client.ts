import type { z } from 'zod';
import {
  PimsError,
  PimsNotFoundError,
  PimsProtocolError,
  PimsRateLimitedError,
  PimsUnavailableError,
  parseRetryAfter,
} from './errors.ts';
import { LineItemsResponse, VisitsResponse, type LineItem, type Visit } from './schemas.ts';

export interface PimsClientOptions {
  /** e.g. `http://127.0.0.1:4020` or `https://pims.example/api`. */
  baseUrl: string;
  /** Hard limit for one request, from sending it to having read the whole body. */
  timeoutMs?: number;
  fetch?: typeof globalThis.fetch;
  /** Sent as `X-Client-Id`, so the system can rate-limit (and log) each of our callers apart. */
  clientId?: string;
  /** Clock for Retry-After HTTP-dates. */
  now?: () => number;
}

export interface PimsClient {
  /** Every open visit, in the system's order. */
  openVisits(signal?: AbortSignal): Promise<Visit[]>;
  /** A visit's line items; rejects with `PimsNotFoundError` when the visit no longer exists. */
  lineItems(visitId: string, signal?: AbortSignal): Promise<LineItem[]>;
}

/**
 * The practice system's HTTP API. Every failure is a `PimsError` whose class says whether to
 * retry, except an abort by the caller's own signal, which rethrows the caller's reason so the
 * caller sees its own cancellation. The client sends each request once and does not
 * rate-limit: pacing is the caller's decision.
 *
 * @example
 * const pims = createPimsClient({ baseUrl: sim.url, clientId: 'billing-sync' });
 * for (const visit of await pims.openVisits(signal)) await pims.lineItems(visit.id, signal);
 */
export function createPimsClient({
  baseUrl,
  timeoutMs = 5000,
  fetch = globalThis.fetch,
  clientId,
  now = Date.now,
}: PimsClientOptions): PimsClient {
  const base = new URL(baseUrl).href.replace(/\/+$/, '');
  if (!(timeoutMs > 0)) throw new RangeError('timeoutMs must be positive');
  const headers: Record<string, string> = { accept: 'application/json' };
  if (clientId !== undefined) headers['x-client-id'] = clientId;

  async function openVisits(signal?: AbortSignal): Promise<Visit[]> {
    const body = await request('/visits?status=open', VisitsResponse, signal);
    return body.visits;
  }

  async function lineItems(visitId: string, signal?: AbortSignal): Promise<LineItem[]> {
    // `.` and `..` survive encoding and would be resolved away by the URL parser.
    if (visitId === '' || visitId === '.' || visitId === '..') throw new RangeError('invalid visit id');
    const body = await request(`/visits/${encodeURIComponent(visitId)}/line-items`, LineItemsResponse, signal);
    return body.items;
  }

  async function request<S extends z.ZodType>(path: string, schema: S, callerSignal: AbortSignal | undefined): Promise<z.output<S>> {
    // A clearable timer rather than AbortSignal.timeout(): the latter stays alive (with its link
    // to a long-lived caller signal) until it fires, whether or not the request is long done.
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new DOMException('pims request timed out', 'TimeoutError')), timeoutMs);
    const signal = callerSignal ? AbortSignal.any([deadline.signal, callerSignal]) : deadline.signal;
    try {
      const res = await fetch(`${base}${path}`, { method: 'GET', headers, signal });
      // Read every body, error answers included: an unread body keeps the connection from
      // going back to the pool. It is read under the same signal, so it cannot outlive the deadline.
      const text = await res.text();
      if (res.status === 200) return parseBody(path, text, schema);
      throw statusError(path, res, now());
    } catch (err) {
      if (err instanceof PimsError) throw err;
      if (callerSignal?.aborted) throw callerSignal.reason;
      if (deadline.signal.aborted) throw new PimsUnavailableError(path, `timed out after ${timeoutMs} ms`, { cause: err });
      // fetch rejects with TypeError for resets, refused connections and cut-off bodies.
      throw new PimsUnavailableError(path, networkCode(err), { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  return { openVisits, lineItems };
}

function parseBody<S extends z.ZodType>(path: string, text: string, schema: S): z.output<S> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new PimsProtocolError(path, ['body is not JSON'], { status: 200 });
  }
  const parsed = schema.safeParse(json);
  if (parsed.success) return parsed.data;
  // Paths and codes only: zod's messages can quote the values received.
  const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.code}`);
  throw new PimsProtocolError(path, issues, { status: 200 });
}

function statusError(path: string, res: Response, now: number): PimsError {
  const status = res.status;
  if (status === 404) return new PimsNotFoundError(path);
  if (status === 429) return new PimsRateLimitedError(path, parseRetryAfter(res.headers.get('retry-after'), now));
  if (status >= 500 || status === 408) return new PimsUnavailableError(path, String(status), { status });
  // Another 4xx, a 2xx other than 200 or a redirect: the contract names none of them.
  return new PimsProtocolError(path, [`unexpected status ${status}`], { status });
}

/** A short, data-free description of a network failure, e.g. `ECONNREFUSED`. */
function networkCode(err: unknown): string {
  const cause = err instanceof Error ? (err.cause as { code?: unknown } | undefined) : undefined;
  const code = cause && typeof cause.code === 'string' ? cause.code : undefined;
  return code ?? (err instanceof Error ? err.name : 'network error');
}
