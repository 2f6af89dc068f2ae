import { createMemoryCoordination } from './memory.ts';
import { createRedisCoordination } from './redis.ts';
import type { Coordination } from './types.ts';

export type { Coordination, Lease, Lock, PubSub, RateLimiter, TakeOptions, TakeResult } from './types.ts';

export interface CoordinationOptions {
  /** The resolved REDIS_URL; without it coordination is in-process (one node only). */
  redisUrl?: string;
  /** Prefix for every Redis key and channel. */
  keyPrefix?: string;
  /** Clock for the in-process version; Redis uses its own server time. */
  now?: () => number;
  /** Redis connection errors after startup, e.g. for the logger. */
  onError?: (err: Error) => void;
}

/**
 * Redis-backed coordination when `redisUrl` is given (connected and pinged before returning),
 * in-process otherwise.
 *
 * @example
 * const coordination = await createCoordination({ redisUrl: config.redisUrl });
 * const lease = await coordination.lock.acquire(`actor:${key}`, 30_000);
 */
export async function createCoordination({
  redisUrl,
  keyPrefix,
  now,
  onError,
}: CoordinationOptions = {}): Promise<Coordination> {
  if (!redisUrl) return createMemoryCoordination({ now });
  try {
    return await createRedisCoordination({ url: redisUrl, keyPrefix, onError });
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(`Redis at REDIS_URL=${redact(redisUrl)} is unreachable: ${reason}`, { cause: err });
  }
}

// The URL may carry a password; it must not end up in logs.
function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable URL)';
  }
}
