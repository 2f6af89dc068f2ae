/**
 * Failures of the practice system's API, shaped so a caller decides retries by class alone:
 *
 * - `PimsNotFoundError` (404): the visit is gone. Terminal; stop tracking it.
 * - `PimsRateLimitedError` (429): retryable, after `retryAfterMs`.
 * - `PimsUnavailableError` (5xx, 408, resets, refused connections, our own timeout): retryable.
 * - `PimsProtocolError`: an answer outside the contract (a 200 that is not JSON or does not
 *   match the schema, or a status the contract does not name). Not retryable: the same request
 *   gets the same answer until someone fixes one side, so it should page a human, not spin.
 *
 * Messages name the request path and the status only, never a response body: bodies hold
 * patient data.
 */

/** Used when a 429 carries no Retry-After, or one we cannot read. */
export const DEFAULT_RETRY_AFTER_MS = 1000;

export interface PimsErrorOptions {
  /** The HTTP status, when the system answered at all. */
  status?: number;
  cause?: unknown;
}

export class PimsError extends Error {
  override readonly name: string = 'PimsError';
  /** Whether sending the same request again can succeed. */
  readonly retryable: boolean = false;
  readonly status: number | undefined;
  /** The contract path, e.g. `/visits/V-000042/line-items`. */
  readonly path: string;

  constructor(path: string, message: string, options: PimsErrorOptions = {}) {
    super(`GET ${path} failed: ${message}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.path = path;
    this.status = options.status;
  }
}

/** 404: the visit does not exist (any more). */
export class PimsNotFoundError extends PimsError {
  override readonly name: string = 'PimsNotFoundError';
  constructor(path: string, options: Omit<PimsErrorOptions, 'status'> = {}) {
    super(path, '404', { ...options, status: 404 });
  }
}

/** 429: this client is over the system's rate limit. */
export class PimsRateLimitedError extends PimsError {
  override readonly name: string = 'PimsRateLimitedError';
  override readonly retryable: boolean = true;
  /** How long to wait before the next request, from Retry-After (default 1000). */
  readonly retryAfterMs: number;

  constructor(path: string, retryAfterMs: number, options: Omit<PimsErrorOptions, 'status'> = {}) {
    super(path, `429 (retry after ${retryAfterMs} ms)`, { ...options, status: 429 });
    this.retryAfterMs = retryAfterMs;
  }
}

/** The system is down, overloaded or unreachable, or did not answer within our timeout. */
export class PimsUnavailableError extends PimsError {
  override readonly name: string = 'PimsUnavailableError';
  override readonly retryable: boolean = true;
}

/** An answer outside the contract. `issues` lists field paths and codes, never values. */
export class PimsProtocolError extends PimsError {
  override readonly name: string = 'PimsProtocolError';
  readonly issues: readonly string[];

  constructor(path: string, issues: readonly string[], options: PimsErrorOptions = {}) {
    super(path, `answer outside the contract (${issues.slice(0, 5).join('; ')})`, options);
    this.issues = issues;
  }
}

/**
 * Retry-After as milliseconds from `now`: delta-seconds (`"1"`; a fraction is tolerated) or an
 * HTTP-date (a past date gives 0). Missing or unreadable gives `DEFAULT_RETRY_AFTER_MS`, so a
 * caller always has a wait to honour rather than retrying at once.
 */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number {
  const text = value?.trim() ?? '';
  if (text === '') return DEFAULT_RETRY_AFTER_MS;
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  // All three HTTP-date forms start with a day name; Date.parse alone would take '-1' or '2 x'.
  const at = /^[A-Za-z]{3}/.test(text) ? Date.parse(text) : Number.NaN;
  if (Number.isNaN(at)) return DEFAULT_RETRY_AFTER_MS;
  return Math.max(0, at - now);
}
