import {
  assertName,
  assertTtl,
  pollAcquire,
  resolveTake,
  type Coordination,
  type Lease,
  type Lock,
  type PubSub,
  type RateLimiter,
} from './types.ts';

export interface MemoryCoordinationOptions {
  /** Clock for TTLs and bucket refill; tests pass a manual one. acquireWait waits in real time. */
  now?: () => number;
}

/** Single-node coordination with the same semantics as the Redis version. */
export function createMemoryCoordination({ now = Date.now }: MemoryCoordinationOptions = {}): Coordination {
  let closed = false;
  function open(): void {
    // Mirrors a closed Redis connection, so code that works here does not break on Redis.
    if (closed) throw new Error('coordination is closed');
  }

  const held = new Map<string, { token: number; expiresAt: number }>();
  // Counters are never dropped: a token must never repeat, even after the lock has gone idle.
  const counters = new Map<string, number>();

  function current(name: string, token: number) {
    const entry = held.get(name);
    return entry && entry.token === token && entry.expiresAt > now() ? entry : undefined;
  }

  const lock: Lock = {
    async acquire(name, ttlMs) {
      assertName('lock name', name);
      assertTtl(ttlMs);
      open();
      const entry = held.get(name);
      if (entry && entry.expiresAt > now()) return null;
      const token = (counters.get(name) ?? 0) + 1;
      counters.set(name, token);
      const expiresAt = now() + ttlMs;
      held.set(name, { token, expiresAt });
      const lease: Lease = {
        name,
        token,
        expiresAt,
        async extend(ttl) {
          assertTtl(ttl);
          open();
          const mine = current(name, token);
          if (!mine) return false;
          mine.expiresAt = lease.expiresAt = now() + ttl;
          return true;
        },
        async release() {
          open();
          if (!current(name, token)) return false;
          held.delete(name);
          return true;
        },
      };
      return lease;
    },
    acquireWait(name, ttlMs, waitMs) {
      return pollAcquire(() => lock.acquire(name, ttlMs), waitMs);
    },
    async check(name, token) {
      open();
      return current(name, token) !== undefined;
    },
  };

  const buckets = new Map<string, { tokens: number; at: number }>();

  const rateLimiter: RateLimiter = {
    async take(name, opts) {
      assertName('bucket name', name);
      const n = resolveTake(opts);
      open();
      const { ratePerSec, burst } = opts;
      const t = now();
      const bucket = buckets.get(name) ?? { tokens: burst, at: t };
      // max(0, ...) so a clock stepping backwards never drains the bucket.
      bucket.tokens = Math.min(burst, bucket.tokens + (Math.max(0, t - bucket.at) * ratePerSec) / 1000);
      bucket.at = t;
      buckets.set(name, bucket);
      if (bucket.tokens >= n) {
        bucket.tokens -= n;
        return { ok: true, retryAfterMs: 0, remaining: Math.floor(bucket.tokens) };
      }
      const retryAfterMs = Math.ceil(((n - bucket.tokens) * 1000) / ratePerSec);
      return { ok: false, retryAfterMs, remaining: Math.floor(bucket.tokens) };
    },
  };

  const channels = new Map<string, Set<(message: string) => void>>();

  const pubsub: PubSub = {
    async publish(channel, message) {
      assertName('channel', channel);
      open();
      // Deliver asynchronously, as Redis does: a handler never runs inside publish().
      for (const handler of channels.get(channel) ?? []) queueMicrotask(() => handler(message));
    },
    async subscribe(channel, handler) {
      assertName('channel', channel);
      open();
      // Wrapped so the same function subscribed twice gets two independent subscriptions.
      const entry = (message: string) => handler(message);
      const set = channels.get(channel) ?? new Set();
      set.add(entry);
      channels.set(channel, set);
      return async function unsubscribe() {
        set.delete(entry);
        if (set.size === 0 && channels.get(channel) === set) channels.delete(channel);
      };
    },
  };

  return {
    kind: 'memory',
    lock,
    rateLimiter,
    pubsub,
    async ping() {
      open();
    },
    async close() {
      closed = true;
      channels.clear();
    },
  };
}
