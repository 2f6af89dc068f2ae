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
  /**
   * Takes the line for ONE request; refuses atomically while paused or while another holder's
   * lease is unexpired. Interactive requests go first across processes: one refused because the
   * line is busy makes the line wanted by its process for a short while, during which the line is
   * neither taken by nor handed to (`release` with `next`) a bulk request of any other process;
   * the holder's handoff to bulk work then lets go instead, and the waiting process gets in.
   */
  acquire(lineId: string, holder: LineHolder, ttlMs: number): Promise<AcquireResult>;
  /**
   * Releases the lease if `token` still holds it. With `next`, atomically hands the line to the
   * next request (one round trip), still refused if paused meanwhile; returns the result for
   * `next`, or null without `next`. A stale token releases nothing (`next` then gets the line
   * only if it is free, else `{ ok: false, reason: 'busy' }`).
   */
  release(lineId: string, token: number, next?: { holder: LineHolder; ttlMs: number }): Promise<AcquireResult | null>;
  /**
   * Optional (Postgres): the holder of `token` keeps the line for its next request, cheaper than a
   * handoff. The token stays the same while the lease is unexpired (it names the lease, which
   * keeps its expiry unless less than `minLeftMs` is left; then it is extended to `ttlMs` from
   * now, durably, before this resolves), so a request started on the answer, with a timeout
   * under `minLeftMs`, ends before the lease does. Like a handoff, it is refused (and the lease
   * let go) while paused, and handed over as a fresh lease if the old one expired meanwhile.
   */
  renew?(lineId: string, token: number, next: { holder: LineHolder; ttlMs: number; minLeftMs: number }): Promise<AcquireResult>;
  /**
   * Marks the line paused (durable in Postgres) and, atomically with that, reports the request
   * in flight, if any. Idempotent: pausing a paused line returns changed:false and the state as it was.
   */
  pause(lineId: string, reason: string, by: string): Promise<PauseState & { changed: boolean }>;
  resume(lineId: string): Promise<PauseState & { changed: boolean }>;
  state(lineId: string): Promise<PauseState>;
  close(): Promise<void>;
}
