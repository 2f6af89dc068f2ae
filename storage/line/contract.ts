import { z } from 'zod';
import type { LineHolder } from './types.ts';

/**
 * The longest lease `acquire` accepts. Redis mode also keeps a line busy this long after Redis
 * has lost its data, because a lease lost with it may still have a request in flight.
 */
export const DEFAULT_MAX_TTL_MS = 60_000;

/**
 * How long an interactive request refused because another process holds the line keeps bulk
 * requests of other processes off it (each refused try renews it). A waiter that went away
 * holds bulk work up for at most this long.
 */
export const DEFAULT_WANT_MS = 250;

const holderSchema = z.object({
  requestId: z.string().min(1),
  node: z.string().min(1),
  kind: z.enum(['interactive', 'bulk']),
  what: z.string(),
  startedAt: z.number().int().nonnegative(),
});

// Contract checks shared by both implementations, so bad arguments fail the same way in each.

export function assertLineId(lineId: string): void {
  if (typeof lineId !== 'string' || lineId.length === 0 || lineId.length > 200) {
    throw new TypeError('lineId must be a non-empty string of at most 200 characters');
  }
}

export function assertTtl(ttlMs: number, maxTtlMs: number): void {
  // Redis PX takes whole milliseconds; a fractional TTL would be an error only there.
  if (!Number.isInteger(ttlMs) || ttlMs <= 0 || ttlMs > maxTtlMs) {
    throw new RangeError(`ttlMs must be an integer in 1..${maxTtlMs}, got ${ttlMs}`);
  }
}

export function assertText(what: string, value: string): void {
  if (typeof value !== 'string' || value.length === 0) throw new TypeError(`${what} must be a non-empty string`);
}

export function assertToken(token: number): void {
  if (!Number.isSafeInteger(token) || token < 1) throw new RangeError(`token must be a positive integer, got ${token}`);
}

/** The holder as it will be stored: validated, unknown fields dropped. */
export function checkHolder(holder: LineHolder): LineHolder {
  const parsed = holderSchema.safeParse(holder);
  if (!parsed.success) throw new TypeError(`invalid line holder: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data;
}

/** A holder read back from storage; anything malformed is a loud error, never a silent null. */
export function parseHolder(stored: unknown): LineHolder | null {
  if (stored === null || stored === undefined || stored === '') return null;
  const value = typeof stored === 'string' ? JSON.parse(stored) : stored;
  const parsed = holderSchema.safeParse(value);
  if (!parsed.success) throw new Error(`stored line holder is malformed: ${JSON.stringify(value)}`);
  return parsed.data;
}

/** A lease as a pause waits on it (both stores). */
export interface LeaseView {
  token: string | number;
  held: boolean;
  stopped: boolean;
  /** The request its holder named when it stopped (stored form), or the last one recorded. */
  holder: unknown;
  leftMs: number;
}

/**
 * After a pause: if the lease is held across requests, signals its holder and waits until it
 * answers (its request in flight, or null), or until the lease ends (null: nothing is in
 * flight once a lease is gone). The signal is repeated in case the holder missed it. Undefined
 * when the lease is not held: the recorded holder is then the request in flight.
 */
export async function stopHeldLease(
  read: () => Promise<LeaseView | null | undefined>,
  signal: () => void,
  { pollMs, signalEveryMs = 100 }: { pollMs: number; signalEveryMs?: number },
): Promise<LineHolder | null | undefined> {
  let lease = await read();
  if (!lease?.held) return undefined;
  const token = lease.token;
  const deadline = performance.now() + lease.leftMs + 20;
  let signalled = -Infinity;
  for (;;) {
    if (!lease || lease.token !== token) return null;
    if (lease.stopped) return parseHolder(lease.holder);
    const now = performance.now();
    if (now > deadline) return null;
    if (now - signalled >= signalEveryMs) {
      signal();
      signalled = now;
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs));
    lease = await read();
  }
}
