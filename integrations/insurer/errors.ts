/**
 * Failures of the insurer API, shaped so the caller can decide retries by class alone:
 *
 * - `GoneError` (410 on care records): the patient is no longer insured. Terminal; compensate.
 * - `TerminalError` (other 4xx): a bug on one side; retrying sends the same wrong request.
 * - `RetryableError` (5xx, 429, connection resets, aborts): try again, after `retryAfterMs`
 *   when the insurer said how long to wait.
 *   - `InsurerTimeoutError`: our own hard timeout fired.
 *   - `ContractError`: a 200 whose body does not match the schema. Kept retryable (a cut-off
 *     or half-deployed answer tends to heal) but distinct, so it can be counted and alerted on.
 *
 * Messages name the operation and the status only, never a patient id or any patient data.
 */

export type InsurerOperation = 'list patients' | 'care records';

export interface InsurerErrorOptions {
  status?: number;
  cause?: unknown;
}

export class InsurerError extends Error {
  override readonly name: string = 'InsurerError';
  /** Whether trying the same request again can succeed. */
  readonly retryable: boolean = false;
  /** The HTTP status, when the insurer answered at all. */
  readonly status: number | undefined;
  readonly operation: InsurerOperation;

  constructor(operation: InsurerOperation, message: string, options: InsurerErrorOptions = {}) {
    super(`${operation} request failed: ${message}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.operation = operation;
    this.status = options.status;
  }
}

/** 410: the patient is no longer insured. Never retry. */
export class GoneError extends InsurerError {
  override readonly name: string = 'GoneError';
  constructor(operation: InsurerOperation, options: InsurerErrorOptions = {}) {
    super(operation, '410', { ...options, status: 410 });
  }
}

/** A 4xx other than 410 (and 408/429): retrying the same request will fail the same way. */
export class TerminalError extends InsurerError {
  override readonly name: string = 'TerminalError';
}

export class RetryableError extends InsurerError {
  override readonly name: string = 'RetryableError';
  override readonly retryable: boolean = true;
  /** How long the insurer asked us to wait (Retry-After), when it did. */
  readonly retryAfterMs: number | undefined;

  constructor(operation: InsurerOperation, message: string, options: InsurerErrorOptions & { retryAfterMs?: number } = {}) {
    super(operation, message, options);
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** Our hard per-request timeout fired (connect, headers or body). */
export class InsurerTimeoutError extends RetryableError {
  override readonly name: string = 'InsurerTimeoutError';
  readonly timeoutMs: number;

  constructor(operation: InsurerOperation, timeoutMs: number, options: InsurerErrorOptions = {}) {
    super(operation, `timed out after ${timeoutMs} ms`, options);
    this.timeoutMs = timeoutMs;
  }
}

/** A 200 whose body is not JSON or does not match the schema. `issues` lists paths, not values. */
export class ContractError extends RetryableError {
  override readonly name: string = 'ContractError';
  readonly issues: readonly string[];

  constructor(operation: InsurerOperation, issues: readonly string[], options: InsurerErrorOptions = {}) {
    super(operation, `response does not match the contract (${issues.slice(0, 5).join('; ')})`, options);
    this.issues = issues;
  }
}

/** True when `err` is worth retrying: a retryable insurer error. Unknown errors are not. */
export function isRetryable(err: unknown): boolean {
  return err instanceof InsurerError && err.retryable;
}

/**
 * Retry-After as milliseconds from `now`: delay-seconds (`"1"`, `"2.5"`) or an HTTP-date.
 * Returns undefined when absent or unreadable; a date in the past gives 0.
 */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | undefined {
  if (value == null) return undefined;
  const text = value.trim();
  if (text === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

/** An insurer error as plain data, to cross a thread boundary (see `errorFromWire`). */
export interface WireError {
  name: string;
  message: string;
  operation?: InsurerOperation;
  status?: number;
  retryAfterMs?: number;
  timeoutMs?: number;
  issues?: readonly string[];
}

export function errorToWire(err: unknown): WireError {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err) };
  const wire: WireError = { name: err.name, message: err.message };
  if (err instanceof InsurerError) {
    wire.operation = err.operation;
    wire.status = err.status;
    // The part after "<operation> request failed: ", which the constructors add again.
    wire.message = err.message.slice(`${err.operation} request failed: `.length);
  }
  if (err instanceof RetryableError) wire.retryAfterMs = err.retryAfterMs;
  if (err instanceof InsurerTimeoutError) wire.timeoutMs = err.timeoutMs;
  if (err instanceof ContractError) wire.issues = err.issues;
  return wire;
}

/** The insurer error `errorToWire` described, of the same class; anything else as a plain Error. */
export function errorFromWire(wire: WireError): Error {
  const op = wire.operation;
  if (op === undefined) return Object.assign(new Error(wire.message), { name: wire.name });
  const options = { status: wire.status };
  switch (wire.name) {
    case 'GoneError':
      return new GoneError(op);
    case 'TerminalError':
      return new TerminalError(op, wire.message, options);
    case 'InsurerTimeoutError':
      return new InsurerTimeoutError(op, wire.timeoutMs ?? 0);
    case 'ContractError':
      return new ContractError(op, wire.issues ?? [], options);
    case 'RetryableError':
      return new RetryableError(op, wire.message, { ...options, retryAfterMs: wire.retryAfterMs });
    default:
      return new InsurerError(op, wire.message, options);
  }
}
