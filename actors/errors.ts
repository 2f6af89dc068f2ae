/**
 * The runtime's error vocabulary. HTTP maps each to a problem+json status in one place; callers
 * decide retries by class, never by message.
 */
export class RuntimeError extends Error {
  readonly status: number = 500;
  readonly field?: string;
  constructor(message: string, opts?: { field?: string; cause?: unknown }) {
    super(message, opts?.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    if (opts?.field !== undefined) this.field = opts.field;
  }
}

export class NotFoundError extends RuntimeError {
  override readonly status = 404;
}

export class ValidationError extends RuntimeError {
  override readonly status: number = 422;
}

export class BadRequestError extends ValidationError {
  override readonly status = 400;
}

export class PayloadTooLargeError extends RuntimeError {
  override readonly status = 413;
}

/** The machine did not take the event in its current state. */
export class NotAcceptedError extends RuntimeError {
  override readonly status = 409;
  constructor(
    readonly state: string,
    readonly eventType: string,
    readonly seq: number,
  ) {
    super(`event '${eventType}' is not accepted in state '${state}'`, { field: 'type' });
  }
}

/** Backpressure: retry after the given delay. */
export class UnavailableError extends RuntimeError {
  override readonly status = 503;
  constructor(
    message: string,
    readonly retryAfterMs: number,
  ) {
    super(message);
  }
}

/** A write under an ownership epoch that is no longer current (cluster fencing). */
export class StaleEpochError extends RuntimeError {
  override readonly status = 409;
}

/**
 * A state the actor moved to by itself (an effect's output, a timer) that cannot be stored: over
 * the snapshot bound, or with text PostgreSQL refuses. Nothing since the last save is kept.
 */
export class UnstorableStateError extends RuntimeError {}

export class TimeoutError extends RuntimeError {
  override readonly status = 504;
}

/** Name and message of an error, for logs (never its data). */
export function errInfo(err: unknown): { name: string; message: string } {
  return err instanceof Error ? { name: err.name, message: err.message } : { name: 'Error', message: String(err) };
}
