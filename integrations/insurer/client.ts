import type { z } from 'zod';
import {
  ContractError,
  GoneError,
  InsurerError,
  InsurerTimeoutError,
  RetryableError,
  TerminalError,
  parseRetryAfter,
  type InsurerOperation,
} from './errors.ts';
import { CareRecordsBody, PatientPage, type CareRecord, type PatientPage as PatientPageType } from './schemas.ts';

export interface InsurerClientOptions {
  /** e.g. `http://127.0.0.1:4010` or `https://insurer.example/api/v2` */
  baseUrl: string;
  /** Hard limit for one request, from sending it to having read the whole body. */
  timeoutMs: number;
  fetch?: typeof globalThis.fetch;
  /** Clock for Retry-After HTTP-dates. */
  now?: () => number;
}

export interface ListPatientsParams {
  /** Absent (or null) for the first page. */
  cursor?: string | null;
  limit: number;
  idempotencyKey: string;
  signal?: AbortSignal;
}

export interface CareRecordsParams {
  idempotencyKey: string;
  signal?: AbortSignal;
}

export interface InsurerClient {
  /** One page of the patient list. The insurer may return many more patients than `limit`. */
  listPatients(params: ListPatientsParams): Promise<PatientPageType>;
  /** A patient's care records; rejects with `GoneError` when the patient is no longer insured. */
  careRecords(patientId: string, params: CareRecordsParams): Promise<CareRecord[]>;
}

/**
 * The insurer's HTTP API. Every failure is an `InsurerError` whose class says whether to retry.
 *
 * @example
 * const insurer = createInsurerClient({ baseUrl: sim.url, timeoutMs: 5_000 });
 * const page = await insurer.listPatients({ limit: 100, idempotencyKey: 'sync-1:page-0', signal });
 */
export function createInsurerClient({ baseUrl, timeoutMs, fetch = globalThis.fetch, now = Date.now }: InsurerClientOptions): InsurerClient {
  const base = new URL(baseUrl).href.replace(/\/+$/, '');
  if (!(timeoutMs > 0)) throw new RangeError('timeoutMs must be positive');

  async function listPatients({ cursor, limit, idempotencyKey, signal }: ListPatientsParams): Promise<PatientPageType> {
    const query = new URLSearchParams();
    if (cursor != null) query.set('cursor', cursor);
    query.set('limit', String(limit));
    return request('list patients', `${base}/patients?${query}`, idempotencyKey, signal, PatientPage);
  }

  async function careRecords(patientId: string, { idempotencyKey, signal }: CareRecordsParams): Promise<CareRecord[]> {
    const url = `${base}/patients/${encodeURIComponent(patientId)}/care-records`;
    const body = await request('care records', url, idempotencyKey, signal, CareRecordsBody);
    return body.careRecords;
  }

  async function request<S extends z.ZodType>(
    operation: InsurerOperation,
    url: string,
    idempotencyKey: string,
    callerSignal: AbortSignal | undefined,
    schema: S,
  ): Promise<z.output<S>> {
    // A clearable timer rather than AbortSignal.timeout(): the latter keeps every signal (and
    // its link to a long-lived caller signal) alive until it fires, ~35 MB per 200k requests.
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new DOMException('insurer request timed out', 'TimeoutError')), timeoutMs);
    const signal = callerSignal ? AbortSignal.any([deadline.signal, callerSignal]) : deadline.signal;
    try {
      const res = await fetch(url, {
        method: 'GET',
        headers: { accept: 'application/json', 'idempotency-key': idempotencyKey },
        signal,
      });
      // The body is read under the same signal, so a trickling body cannot outlive the deadline.
      const text = await res.text();
      if (res.status === 200) return parseBody(operation, text, schema);
      throw statusError(operation, res, now());
    } catch (err) {
      if (err instanceof InsurerError) throw err;
      if (deadline.signal.aborted) throw new InsurerTimeoutError(operation, timeoutMs, { cause: err });
      if (callerSignal?.aborted) throw new RetryableError(operation, 'aborted by caller', { cause: callerSignal.reason });
      // fetch rejects with TypeError for resets, refused connections and cut-off bodies.
      throw new RetryableError(operation, networkCode(err), { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  return { listPatients, careRecords };
}

function parseBody<S extends z.ZodType>(operation: InsurerOperation, text: string, schema: S): z.output<S> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ContractError(operation, ['body is not JSON'], { status: 200 });
  }
  const parsed = schema.safeParse(json);
  if (parsed.success) return parsed.data;
  // Paths and codes only: issue messages could quote what the insurer sent.
  const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.code}`);
  throw new ContractError(operation, issues, { status: 200 });
}

function statusError(operation: InsurerOperation, res: Response, now: number): InsurerError {
  const status = res.status;
  if (status === 410 && operation === 'care records') return new GoneError(operation);
  if (status === 429 || status === 408 || status >= 500) {
    const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'), now);
    return new RetryableError(operation, String(status), { status, retryAfterMs });
  }
  if (status >= 400) return new TerminalError(operation, String(status), { status });
  // A 2xx other than 200, or a redirect we were not told about: not the contract.
  return new ContractError(operation, [`unexpected status ${status}`], { status });
}

/** A short, data-free description of a network failure, e.g. `ECONNRESET`. */
function networkCode(err: unknown): string {
  const cause = err instanceof Error ? (err.cause as { code?: unknown } | undefined) : undefined;
  const code = cause && typeof cause.code === 'string' ? cause.code : undefined;
  return code ?? (err instanceof Error ? err.name : 'network error');
}
