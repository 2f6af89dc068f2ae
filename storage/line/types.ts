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

/**
 * `held`: the holder keeps the lease for several requests, sending each without asking the store
 * while enough of the lease is left and no signal came (`LineHold.watch`). A pause then waits for
 * the holder's answer (`LineHold.ack`) before it resolves.
 */
export interface HoldOption {
  held?: boolean;
}

/**
 * Signals to the process keeping a `held` lease, so that the store need not be asked before each
 * request. `stop`: the line was paused; answer with `ack` at once, then start nothing more under
 * the lease (the next round trip is refused and lets the lease go). `want`: another process's
 * interactive request waits for the line; ask the store before the next request (a bulk one is
 * then refused and the lease let go). Signals are best-effort: a missed `stop` makes a pause wait
 * for the lease to expire, never lets a request start after it answered.
 */
export interface LineHold {
  /** Resolves once subscribed: take a held lease only after that. The result unsubscribes. */
  watch(lineId: string, onSignal: (signal: 'stop' | 'want') => void): Promise<() => Promise<void>>;
  /**
   * The answer to `stop`: the holder of `token` has stopped starting requests; `inFlight` is the
   * one still in flight under the lease, or null. False if the token no longer holds the lease.
   */
  ack(lineId: string, token: number, inFlight: LineHolder | null): Promise<boolean>;
}

export interface PauseState {
  paused: boolean;
  reason: string | null;
  /** Epoch ms on the database clock. */
  pausedAt: number | null;
  pausedBy: string | null;
  /**
   * The current unexpired holder, if any. Of a held lease: the request that took or last renewed
   * it, or, once its holder answered a pause, the request it named.
   */
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
  acquire(lineId: string, holder: LineHolder, ttlMs: number, opts?: HoldOption): Promise<AcquireResult>;
  /**
   * Releases the lease if `token` still holds it. With `next`, atomically hands the line to the
   * next request (one round trip), still refused if paused meanwhile; returns the result for
   * `next`, or null without `next`. A stale token releases nothing (`next` then gets the line
   * only if it is free, else `{ ok: false, reason: 'busy' }`).
   */
  release(lineId: string, token: number, next?: { holder: LineHolder; ttlMs: number } & HoldOption): Promise<AcquireResult | null>;
  /**
   * Optional (Postgres): the holder of `token` keeps the line for its next request, cheaper than a
   * handoff. The token stays the same while the lease is unexpired (it names the lease, which
   * keeps its expiry unless less than `minLeftMs` is left; then it is extended to `ttlMs` from
   * now, durably, before this resolves), so a request started on the answer, with a timeout
   * under `minLeftMs`, ends before the lease does. Like a handoff, it is refused (and the lease
   * let go) while paused, and handed over as a fresh lease if the old one expired meanwhile.
   */
  renew?(lineId: string, token: number, next: { holder: LineHolder; ttlMs: number; minLeftMs: number } & HoldOption): Promise<AcquireResult>;
  /**
   * A lease taken with `held` is kept for several requests, with no round trip before each;
   * see `LineHold`. Signals go over Redis pub/sub, or Postgres LISTEN/NOTIFY.
   */
  hold?: LineHold;
  /**
   * Marks the line paused (durable in Postgres) and, atomically with that, reports the request
   * in flight, if any. Idempotent: pausing a paused line returns changed:false and the state as it was.
   * When the lease is `held`, it resolves once its holder has stopped (`LineHold.ack`) and reports
   * the request the holder named, or once the lease has ended (let go, or expired with nothing
   * in flight).
   */
  pause(lineId: string, reason: string, by: string): Promise<PauseState & { changed: boolean }>;
  resume(lineId: string): Promise<PauseState & { changed: boolean }>;
  state(lineId: string): Promise<PauseState>;
  close(): Promise<void>;
}
