import type { Db } from '../db.ts';
import { createPostgresLine } from './postgres.ts';
import { createRedisLine } from './redis.ts';
import type { Line } from './types.ts';

export type { AcquireResult, Acquired, HoldOption, Line, LineHold, LineHolder, PauseState, Refused } from './types.ts';
export { DEFAULT_MAX_TTL_MS } from './contract.ts';

export interface LineOptions {
  /** Always needed: the pause is durable in Postgres, and without Redis the lease lives there too. */
  db: Db;
  /** The resolved REDIS_URL and key prefix; without it the line lives in Postgres alone. */
  redis?: { url: string; keyPrefix?: string };
  /** The longest lease `acquire` accepts (default 60 s); see DEFAULT_MAX_TTL_MS. */
  maxTtlMs?: number;
  /** Connection errors after startup (Redis, or the Postgres connection listening for signals), e.g. for the logger. */
  onError?: (err: Error) => void;
}

/**
 * The line to external systems: at most one request in flight per line across all processes,
 * and a durable pause that stops everything. Redis-backed when `redis` is given (connected and
 * pinged before returning), Postgres-backed otherwise; both are correct across processes.
 *
 * @example
 * const line = await createLine({ db, redis: config.redisUrl ? { url: config.redisUrl } : undefined });
 * const got = await line.acquire('insurer:KK01', holder, 30_000);
 * if (got.ok) {
 *   try { await callInsurer(got.token) } finally { await line.release('insurer:KK01', got.token) }
 * }
 */
export async function createLine({ db, redis, maxTtlMs, onError }: LineOptions): Promise<Line> {
  if (!redis) return createPostgresLine({ db, maxTtlMs, onError });
  try {
    return await createRedisLine({ db, url: redis.url, keyPrefix: redis.keyPrefix, maxTtlMs, onError });
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(`Redis at REDIS_URL=${redact(redis.url)} is unreachable: ${reason}`, { cause: err });
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
