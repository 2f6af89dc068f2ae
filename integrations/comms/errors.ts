/**
 * Failures of the chat/video/mail provider, shaped so a caller decides retries by class alone.
 * Every request carries an Idempotency-Key, so a retry with the same key never does the work
 * twice: retrying a retryable error is always safe.
 *
 * - `CommsUnavailableError` (5xx, 408, network failures, our own timeout): retry, same key.
 * - `CommsRateLimitedError` (429): retry, same key, after `retryAfterMs`.
 * - `CommsRejectedError` (any other 4xx): the request itself is wrong; retrying cannot help.
 * - `CommsProtocolError`: an answer outside the contract (an unexpected status, a body that is
 *   not the documented JSON). Not retryable: a human has to look at one side or the other.
 *
 * Messages name the method, the path and the status only: request bodies hold email
 * addresses, and the provider's answers may echo them.
 */

/** Used when a 429 carries no Retry-After, or one we cannot read. */
export const DEFAULT_RETRY_AFTER_MS = 1000;

export interface CommsErrorOptions {
  /** The HTTP status, when the provider answered at all. */
  status?: number;
  cause?: unknown;
}

export class CommsError extends Error {
  override readonly name: string = 'CommsError';
  /** Whether sending the same request again (with the same Idempotency-Key) can succeed. */
  readonly retryable: boolean = false;
  readonly status: number | undefined;
  /** The contract path, e.g. `/rooms`. */
  readonly path: string;

  constructor(path: string, message: string, options: CommsErrorOptions = {}) {
    super(`POST ${path} failed: ${message}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.path = path;
    this.status = options.status;
  }
}

/** The provider is down, overloaded or unreachable, or did not answer within our timeout. */
export class CommsUnavailableError extends CommsError {
  override readonly name: string = 'CommsUnavailableError';
  override readonly retryable: boolean = true;
}

/** 429: over the provider's rate limit. */
export class CommsRateLimitedError extends CommsError {
  override readonly name: string = 'CommsRateLimitedError';
  override readonly retryable: boolean = true;
  /** How long to wait before retrying, from Retry-After (default 1000). */
  readonly retryAfterMs: number;

  constructor(path: string, retryAfterMs: number, options: Omit<CommsErrorOptions, 'status'> = {}) {
    super(path, `429 (retry after ${retryAfterMs} ms)`, { ...options, status: 429 });
    this.retryAfterMs = retryAfterMs;
  }
}

/** A 4xx other than 408 and 429: the provider refuses this request as it is. */
export class CommsRejectedError extends CommsError {
  override readonly name: string = 'CommsRejectedError';
  constructor(path: string, status: number, options: Omit<CommsErrorOptions, 'status'> = {}) {
    super(path, String(status), { ...options, status });
  }
}

/** An answer outside the contract. `issues` lists field paths and codes, never values. */
export class CommsProtocolError extends CommsError {
  override readonly name: string = 'CommsProtocolError';
  readonly issues: readonly string[];

  constructor(path: string, issues: readonly string[], options: CommsErrorOptions = {}) {
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
