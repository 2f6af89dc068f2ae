/**
 * The line to an external system: a per-line lease that exactly one request holds while it is
 * in flight, and a durable pause that is atomic with acquisition. Two implementations pass one
 * suite (test/integration/line.test.ts): Postgres only, or Redis with the pause kept in Postgres.
 */

export interface LineHolder {
  requestId: string;
  node: string;
  kind: 'interactive' | 'bulk';
  what: string;
  /** Epoch ms, the holder's clock; informational only (expiry uses the store's clock). */
  startedAt: number;
}

/** `token` is a fencing token: strictly increasing per line, across processes. */
export type Acquired = { ok: true; token: number };
export type Refused = { ok: false; reason: 'busy' | 'paused' };
export type AcquireResult = Acquired | Refused;

export interface PauseState {
  paused: boolean;
  reason: string | null;
  /** Epoch ms on the database clock. */
  pausedAt: number | null;
  pausedBy: string | null;
  /** The current unexpired holder, if any. */
  inFlight: LineHolder | null;
}

export interface Line {
  readonly kind: 'redis' | 'postgres';
  /** Takes the line for ONE request; refuses atomically while paused or while another holder's lease is unexpired. */
  acquire(lineId: string, holder: LineHolder, ttlMs: number): Promise<AcquireResult>;
  /**
   * Releases the lease if `token` still holds it. With `next`, atomically hands the line to the
   * next request (one round trip), still refused if paused meanwhile; returns the result for
   * `next`, or null without `next`. A stale token releases nothing (`next` then gets the line
   * only if it is free, else `{ ok: false, reason: 'busy' }`).
   */
  release(lineId: string, token: number, next?: { holder: LineHolder; ttlMs: number }): Promise<AcquireResult | null>;
  /**
   * Marks the line paused (durable in Postgres) and, atomically with that, reports the request
   * in flight, if any. Idempotent: pausing a paused line returns changed:false and the state as it was.
   */
  pause(lineId: string, reason: string, by: string): Promise<PauseState & { changed: boolean }>;
  resume(lineId: string): Promise<PauseState & { changed: boolean }>;
  state(lineId: string): Promise<PauseState>;
  close(): Promise<void>;
}
