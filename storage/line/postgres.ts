import type { Db } from '../db.ts';
import { DEFAULT_MAX_TTL_MS, DEFAULT_WANT_MS, assertLineId, assertText, assertToken, assertTtl, checkHolder, parseHolder } from './contract.ts';
import * as sql from './sql.ts';
import type { AcquireResult, Line, PauseState } from './types.ts';

export interface PostgresLineOptions {
  db: Db;
  /** The longest lease `acquire` accepts. */
  maxTtlMs?: number;
  /** How long a refused interactive request keeps other processes' bulk requests off the line. */
  wantMs?: number;
}

/** A pause-state row from sql.ts (pause, resume, state). */
export interface StateRow {
  paused: boolean;
  reason: string | null;
  paused_at: number | null;
  paused_by: string | null;
  holder: unknown;
}

const notPaused: PauseState = { paused: false, reason: null, pausedAt: null, pausedBy: null, inFlight: null };

export function toPauseState(row: StateRow | undefined): PauseState {
  if (!row) return { ...notPaused };
  return {
    paused: row.paused,
    reason: row.reason,
    pausedAt: row.paused_at,
    pausedBy: row.paused_by,
    inFlight: parseHolder(row.holder),
  };
}

function toAcquireResult(row: { token: number | null; paused: boolean | null } | undefined): AcquireResult {
  if (!row) throw new Error('line statement returned no row');
  if (row.token !== null) return { ok: true, token: row.token };
  // Paused wins over busy: a caller waits for resume, not for the holder.
  return { ok: false, reason: row.paused ? 'paused' : 'busy' };
}

/**
 * The line in Postgres alone: correct for several processes on one database, each operation one
 * statement. Taking the line is durable (a synchronous commit): a lease lost in a database crash
 * would let a second request in while the first is still in flight, and would hand its fencing
 * token out twice. A plain release skips the fsync, since losing one only delays the next
 * holder until the lease expires; so does a renew that leaves the lease's expiry as it was (the
 * holder it records is informational), while one that extends the lease is durable.
 *
 * @example
 * const line = createPostgresLine({ db });
 * const got = await line.acquire('insurer:KK01', holder, 30_000);
 * if (got.ok) try { await callInsurer() } finally { await line.release('insurer:KK01', got.token) }
 */
export function createPostgresLine({ db, maxTtlMs = DEFAULT_MAX_TTL_MS, wantMs = DEFAULT_WANT_MS }: PostgresLineOptions): Line {
  let closed = false;
  function open(): void {
    if (closed) throw new Error('line is closed');
  }

  async function run<R extends object>(q: sql.Query): Promise<R[]> {
    open();
    return (await db.query<R>(q.text, q.values, q.name)).rows;
  }

  return {
    kind: 'postgres',

    async acquire(lineId, holder, ttlMs) {
      assertLineId(lineId);
      assertTtl(ttlMs, maxTtlMs);
      const [row] = await run<{ token: number | null; paused: boolean | null }>(sql.acquire(lineId, checkHolder(holder), ttlMs, wantMs));
      return toAcquireResult(row);
    },

    async renew(lineId, token, next) {
      assertLineId(lineId);
      assertToken(token);
      assertTtl(next.ttlMs, maxTtlMs);
      if (!Number.isInteger(next.minLeftMs) || next.minLeftMs < 0 || next.minLeftMs > next.ttlMs) {
        throw new RangeError(`minLeftMs must be an integer in 0..ttlMs, got ${next.minLeftMs}`);
      }
      const holder = checkHolder(next.holder);
      const [row] = await run<{ held: boolean; token: number | null; paused: boolean | null }>(sql.renew(lineId, token, holder, next.ttlMs, next.minLeftMs));
      if (!row) throw new Error('line statement returned no row');
      if (row.held) return toAcquireResult(row);
      // The lease is gone (expired): the line goes to \`next\` only as a fresh lease, if it is free.
      const [handed] = await run<{ token: number | null; paused: boolean | null }>(sql.handoff(lineId, token, holder, next.ttlMs));
      return toAcquireResult(handed);
    },

    async release(lineId, token, next) {
      assertLineId(lineId);
      assertToken(token);
      if (!next) {
        await run(sql.release(lineId, token));
        return null;
      }
      assertTtl(next.ttlMs, maxTtlMs);
      const [row] = await run<{ token: number | null; paused: boolean | null }>(
        sql.handoff(lineId, token, checkHolder(next.holder), next.ttlMs),
      );
      return toAcquireResult(row);
    },

    async pause(lineId, reason, by) {
      assertLineId(lineId);
      assertText('reason', reason);
      assertText('by', by);
      // No row only when a concurrent first write created the line's row; then it is locked and seen.
      for (let attempt = 0; attempt < 3; attempt++) {
        const [row] = await run<StateRow & { changed: boolean }>(sql.pause(lineId, reason, by));
        if (row) return { ...toPauseState(row), changed: row.changed };
      }
      throw new Error(`pause of line ${lineId} kept racing with the row's creation`);
    },

    async resume(lineId) {
      assertLineId(lineId);
      const [row] = await run<StateRow & { changed: boolean }>(sql.resume(lineId));
      return { ...toPauseState(row), changed: row?.changed ?? false };
    },

    async state(lineId) {
      assertLineId(lineId);
      const [row] = await run<StateRow>(sql.state(lineId));
      return toPauseState(row);
    },

    async close() {
      // The Db belongs to the caller.
      closed = true;
    },
  };
}
