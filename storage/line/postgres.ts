import type { Db } from '../db.ts';
import { DEFAULT_MAX_TTL_MS, DEFAULT_WANT_MS, assertLineId, assertText, assertToken, assertTtl, checkHolder, parseHolder, stopHeldLease, type LeaseView } from './contract.ts';
import { pgSignals } from './pg-signals.ts';
import * as sql from './sql.ts';
import type { AcquireResult, Line, PauseState } from './types.ts';

export interface PostgresLineOptions {
  db: Db;
  /** The longest lease `acquire` accepts. */
  maxTtlMs?: number;
  /** How long a refused interactive request keeps other processes' bulk requests off the line. */
  wantMs?: number;
  /** Errors of the connection that listens for signals to held leases (it reconnects). */
  onError?: (err: Error) => void;
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
 * A lease taken `held` is kept across requests without a round trip each; a pause then signals
 * its holder over LISTEN/NOTIFY and answers once the holder has stopped (see `LineHold`).
 *
 * @example
 * const line = createPostgresLine({ db });
 * const got = await line.acquire('insurer:KK01', holder, 30_000);
 * if (got.ok) try { await callInsurer() } finally { await line.release('insurer:KK01', got.token) }
 */
export function createPostgresLine({ db, maxTtlMs = DEFAULT_MAX_TTL_MS, wantMs = DEFAULT_WANT_MS, onError }: PostgresLineOptions): Line {
  let closed = false;
  const signals = pgSignals(db, onError);
  function open(): void {
    if (closed) throw new Error('line is closed');
  }

  async function run<R extends object>(q: sql.Query): Promise<R[]> {
    open();
    return (await db.query<R>(q.text, q.values, q.name)).rows;
  }

  /** The unexpired lease, as a pause waits on it (see stopHeldLease). */
  const readLease = async (lineId: string) => (await run<LeaseView>(sql.lease(lineId)))[0];

  return {
    kind: 'postgres',

    async acquire(lineId, holder, ttlMs, opts) {
      assertLineId(lineId);
      assertTtl(ttlMs, maxTtlMs);
      const checked = checkHolder(holder);
      const [row] = await run<{ token: number | null; paused: boolean | null }>(sql.acquire(lineId, checked, ttlMs, wantMs, opts?.held ?? false));
      const got = toAcquireResult(row);
      // A holder keeping its lease asks the store only now and then: tell it someone waits.
      if (!got.ok && got.reason === 'busy' && checked.kind === 'interactive') signals.send(lineId, 'want');
      return got;
    },

    async renew(lineId, token, next) {
      assertLineId(lineId);
      assertToken(token);
      assertTtl(next.ttlMs, maxTtlMs);
      if (!Number.isInteger(next.minLeftMs) || next.minLeftMs < 0 || next.minLeftMs > next.ttlMs) {
        throw new RangeError(`minLeftMs must be an integer in 0..ttlMs, got ${next.minLeftMs}`);
      }
      const holder = checkHolder(next.holder);
      const held = next.held ?? false;
      const [row] = await run<{ held: boolean; token: number | null; paused: boolean | null }>(sql.renew(lineId, token, holder, next.ttlMs, next.minLeftMs, held));
      if (!row) throw new Error('line statement returned no row');
      if (row.held) return toAcquireResult(row);
      // The lease is gone (expired): the line goes to \`next\` only as a fresh lease, if it is free.
      const [handed] = await run<{ token: number | null; paused: boolean | null }>(sql.handoff(lineId, token, holder, next.ttlMs, held));
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
        sql.handoff(lineId, token, checkHolder(next.holder), next.ttlMs, next.held ?? false),
      );
      return toAcquireResult(row);
    },

    async pause(lineId, reason, by) {
      assertLineId(lineId);
      assertText('reason', reason);
      assertText('by', by);
      // No row only when a concurrent first write created the line's row; then it is locked and seen.
      let paused: (StateRow & { changed: boolean }) | undefined;
      for (let attempt = 0; attempt < 3 && !paused; attempt++) [paused] = await run<StateRow & { changed: boolean }>(sql.pause(lineId, reason, by));
      if (!paused) throw new Error(`pause of line ${lineId} kept racing with the row's creation`);
      // Committed: nothing takes the line any more. A holder keeping its lease may still send
      // under it until it hears of the pause, so the answer waits for it to stop.
      const state = { ...toPauseState(paused), changed: paused.changed };
      const stopped = await stopHeldLease(() => readLease(lineId), () => signals.send(lineId, 'stop'), { pollMs: 5 });
      return stopped === undefined ? state : { ...state, inFlight: stopped };
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

    hold: {
      async watch(lineId, onSignal) {
        assertLineId(lineId);
        open();
        return signals.watch(lineId, onSignal);
      },
      async ack(lineId, token, inFlight) {
        assertLineId(lineId);
        assertToken(token);
        const [row] = await run<{ acked: number }>(sql.ack(lineId, token, inFlight ? checkHolder(inFlight) : null));
        return row !== undefined;
      },
    },

    async close() {
      // The Db belongs to the caller; the listening connection is this line's.
      closed = true;
      await signals.close();
    },
  };
}
