/**
 * Cross-node coordination: locks with fencing tokens, a token-bucket rate limiter and pub/sub.
 * Backed by Redis when several nodes run, by an in-process version on a single node; both
 * implementations pass the same test suite (test/integration/coordination.test.ts).
 */

/** A held lock. Times are epoch ms on the coordinator's clock (Redis server time for Redis). */
export interface Lease {
  readonly name: string;
  /** Fencing token: strictly increasing per name across all processes. Pass it to the guarded store. */
  readonly token: number;
  /** When the lease lapses unless extended; updated by a successful `extend`. */
  expiresAt: number;
  /** Resets the TTL to `ttlMs` from now; false when this lease is no longer the holder. */
  extend(ttlMs: number): Promise<boolean>;
  /** Frees the lock; false when this lease is no longer the holder (expired or taken over). */
  release(): Promise<boolean>;
}

export interface Lock {
  /** One non-blocking attempt; null when someone else holds `name`. */
  acquire(name: string, ttlMs: number): Promise<Lease | null>;
  /** Retries until the lock is obtained or `waitMs` of real time has passed (then null). */
  acquireWait(name: string, ttlMs: number, waitMs: number): Promise<Lease | null>;
  /** True while `token` is the current, unexpired holder of `name`. */
  check(name: string, token: number): Promise<boolean>;
}

export interface TakeOptions {
  /** Refill rate in tokens per second. */
  ratePerSec: number;
  /** Bucket capacity: how many tokens can be taken at once after a quiet period. */
  burst: number;
  /** Tokens to take (default 1); at most `burst`. */
  n?: number;
}

export interface TakeResult {
  ok: boolean;
  /** 0 when ok; otherwise the wait until `n` tokens will be available. */
  retryAfterMs: number;
  /** Whole tokens left after this call. */
  remaining: number;
}

export interface RateLimiter {
  /** Takes `n` tokens from bucket `name` atomically, or none at all. */
  take(name: string, opts: TakeOptions): Promise<TakeResult>;
}

export interface PubSub {
  /** Fire-and-forget: only subscribers present at publish time receive the message. */
  publish(channel: string, message: string): Promise<void>;
  /**
   * Resolves once the subscription is active; the returned function removes this handler.
   * Handlers run in their own microtask, so one throwing never starves the others.
   */
  subscribe(channel: string, handler: (message: string) => void): Promise<() => Promise<void>>;
}

export interface Coordination {
  kind: 'redis' | 'memory';
  lock: Lock;
  rateLimiter: RateLimiter;
  pubsub: PubSub;
  ping(): Promise<void>;
  close(): Promise<void>;
}

// Contract checks shared by both implementations, so bad arguments fail the same way in each.

export function assertName(what: string, name: string): void {
  if (typeof name !== 'string' || name.length === 0) throw new TypeError(`${what} must be a non-empty string`);
}

export function assertTtl(ttlMs: number): void {
  // Redis PX takes whole milliseconds; a fractional TTL would be an error only there.
  if (!Number.isInteger(ttlMs) || ttlMs <= 0) throw new RangeError(`ttlMs must be a positive integer, got ${ttlMs}`);
}

/** Validates take options and returns `n` resolved. */
export function resolveTake({ ratePerSec, burst, n = 1 }: TakeOptions): number {
  if (!(ratePerSec > 0) || !Number.isFinite(ratePerSec)) throw new RangeError(`ratePerSec must be > 0, got ${ratePerSec}`);
  if (!Number.isInteger(burst) || burst < 1) throw new RangeError(`burst must be an integer >= 1, got ${burst}`);
  // n > burst could never succeed, so retryAfterMs would be a lie.
  if (!Number.isInteger(n) || n < 1 || n > burst) throw new RangeError(`n must be an integer in 1..${burst}, got ${n}`);
  return n;
}

/** Repeats `attempt` every `pollMs` of real time until it yields a lease or `waitMs` has passed. */
export async function pollAcquire(
  attempt: () => Promise<Lease | null>,
  waitMs: number,
  pollMs = 20,
): Promise<Lease | null> {
  const deadline = performance.now() + Math.max(0, waitMs);
  for (;;) {
    const lease = await attempt();
    if (lease) return lease;
    const left = deadline - performance.now();
    if (left <= 0) return null;
    await new Promise((resolve) => setTimeout(resolve, Math.min(pollMs, left)));
  }
}
