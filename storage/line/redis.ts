import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import type { Db } from '../db.ts';
import { DEFAULT_MAX_TTL_MS, DEFAULT_WANT_MS, assertLineId, assertText, assertToken, assertTtl, checkHolder, stopHeldLease } from './contract.ts';
import { toPauseState, type StateRow } from './postgres.ts';
import { NOT_SYNCED, decode, type NotSynced } from './redis-replies.ts';
import { subscriber } from './signals.ts';
import * as sql from './sql.ts';
import type { Line } from './types.ts';

export interface RedisLineOptions {
  /** Where the pause is durable; Redis only mirrors it. */
  db: Db;
  url: string;
  /** Prepended to every key; tests isolate by using a random one each. */
  keyPrefix?: string;
  /** The longest lease `acquire` accepts, and how long a line stays busy after Redis lost its data. */
  maxTtlMs?: number;
  /** Connection errors after startup (reconnects); commands still reject on their own. */
  onError?: (err: Error) => void;
  /** How long a refused interactive request keeps other processes' bulk requests off the line. */
  wantMs?: number;
}

/** The Lua scripts in ./lua, as ioredis registers them with defineCommand. */
interface Scripts {
  lineAcquire(control: string, lease: string, counter: string, want: string, holder: string, ttlMs: number, kind: string, node: string, wantMs: number, held: Flag): Promise<unknown>;
  lineRelease(control: string, lease: string, counter: string, want: string, token: string, next: string, ttlMs: number, kind: string, node: string, held: Flag): Promise<unknown>;
  lineAck(lease: string, token: string, inFlight: string): Promise<unknown>;
  lineLease(lease: string): Promise<unknown>;
  lineApply(
    control: string,
    lease: string,
    counter: string,
    epoch: string,
    paused: '1' | '0',
    reason: string,
    pausedAt: string,
    pausedBy: string,
    quarantineMs: number,
    mirroredEpoch: string,
  ): Promise<unknown>;
  lineConfirm(control: string, epoch: string): Promise<unknown>;
  lineState(control: string, lease: string): Promise<unknown>;
}

const scriptFiles: Record<keyof Scripts, { file: string; numberOfKeys: number }> = {
  lineAcquire: { file: 'line-acquire.lua', numberOfKeys: 4 },
  lineRelease: { file: 'line-release.lua', numberOfKeys: 4 },
  lineApply: { file: 'line-apply.lua', numberOfKeys: 3 },
  lineConfirm: { file: 'line-confirm.lua', numberOfKeys: 1 },
  lineState: { file: 'line-state.lua', numberOfKeys: 2 },
  lineAck: { file: 'line-ack.lua', numberOfKeys: 1 },
  lineLease: { file: 'line-lease.lua', numberOfKeys: 1 },
};

type Flag = '1' | '0';
const flag = (on: boolean | undefined): Flag => (on ? '1' : '0');

/** Row of sql.bumpEpoch: the durable pause state and its epoch. */
interface EpochRow extends Omit<StateRow, 'holder'> {
  epoch: number;
  /** The epoch of the first resync that recorded the line as mirrored (so leases may follow); null before. */
  mirrored_epoch: number | null;
}

/**
 * The line in Redis: lease, fencing token and a mirror of the pause, each change one Lua script.
 * The pause is durable in Postgres and ordered there by the line's epoch. Redis may lose its
 * data: a line whose control hash is missing refuses everything until it is resynced from
 * Postgres, with fencing tokens restarted above the new epoch and, since a lease may have been
 * lost with the data, the line kept busy for `maxTtlMs`.
 *
 * Connects (and pings) before returning; rejects if Redis is unreachable. Errors reaching Redis
 * or Postgres are thrown, never taken as success.
 */
export async function createRedisLine({
  db,
  url,
  keyPrefix = 'clinic-sync:',
  maxTtlMs = DEFAULT_MAX_TTL_MS,
  onError,
  wantMs = DEFAULT_WANT_MS,
}: RedisLineOptions): Promise<Line> {
  // Fail fast: a dead Redis should surface as an error within seconds, not a hung request; a
  // hung one too, since pause holds the line's Postgres row while it waits for Redis. A command
  // that timed out may still have run: at worst a lease nobody knows of, which expires.
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2_000, commandTimeout: 5_000 });
  for (const [name, { file, numberOfKeys }] of Object.entries(scriptFiles)) {
    const lua = readFileSync(new URL(`./lua/${file}`, import.meta.url), 'utf8');
    client.defineCommand(name, { lua, numberOfKeys });
  }
  const scripts = client as unknown as Scripts;

  // During startup the socket error (ECONNREFUSED...) says more than "Connection is closed".
  let startupError: Error | undefined;
  const remember = (err: Error) => void (startupError ??= err);
  client.on('error', remember);
  try {
    await client.connect();
    await client.ping();
  } catch (err) {
    client.disconnect();
    throw startupError ? new Error(startupError.message, { cause: err }) : err;
  }
  client.off('error', remember);
  if (onError) client.on('error', onError);

  let closing: Promise<void> | undefined;
  function open(): void {
    if (closing) throw new Error('line is closed');
  }

  // One hash tag per line, so a line's keys share a Redis Cluster slot.
  function keysOf(lineId: string) {
    const base = `${keyPrefix}line:{${lineId}}`;
    return { control: `${base}:control`, lease: `${base}:lease`, counter: `${base}:token`, want: `${base}:want` } as const;
  }

  /** Mirrors a durable pause state into Redis; returns what Redis holds afterwards. */
  async function apply(lineId: string, row: EpochRow) {
    const k = keysOf(lineId);
    const reply = await scripts.lineApply(
      k.control,
      k.lease,
      k.counter,
      String(row.epoch),
      row.paused ? '1' : '0',
      row.reason ?? '',
      row.paused_at === null ? '' : String(row.paused_at),
      row.paused_by ?? '',
      maxTtlMs,
      String(row.mirrored_epoch ?? 0),
    );
    return decode.state(reply, 'line-apply');
  }

  /**
   * Rebuilds a missing or unconfirmed control hash from Postgres. The new epoch is committed
   * before Redis sees it (tokens start above it), and the state is confirmed only if no newer
   * one was committed meanwhile: a slow resync never revives a state that a pause replaced.
   * `mirrored_epoch` is committed before the first confirmation, so any later rebuild knows
   * that a lease may have been lost and keeps the line busy (see line-apply.lua for when).
   */
  async function resync(lineId: string): Promise<void> {
    const k = keysOf(lineId);
    for (let attempt = 0; attempt < 8; attempt++) {
      if (attempt > 0) {
        // Lost a race with another process's resync, pause or resume: maybe it confirmed already.
        if (decode.state(await scripts.lineState(k.control, k.lease), 'line-state').ready) return;
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 5 * attempt));
      }
      const [row] = (await db.query<EpochRow>(...args(sql.bumpEpoch(lineId)))).rows;
      if (!row) throw new Error('bumping the line epoch returned no row');
      if ((await apply(lineId, row)).ready) return; // confirmed by another process meanwhile
      const { rowCount } = await db.query(...args(sql.markMirrored(lineId, row.epoch)));
      if (rowCount === 1 && decode.confirmed(await scripts.lineConfirm(k.control, String(row.epoch)))) return;
    }
    throw new Error(`line ${lineId}: resync from Postgres kept racing with other processes`);
  }

  // Concurrent callers in this process that find the mirror missing share one resync.
  const resyncing = new Map<string, Promise<void>>();
  function resyncOnce(lineId: string): Promise<void> {
    let running = resyncing.get(lineId);
    if (!running) {
      running = resync(lineId).finally(() => resyncing.delete(lineId));
      resyncing.set(lineId, running);
    }
    return running;
  }

  /** Runs a script that needs the mirror, resyncing it from Postgres when Redis has lost it. */
  async function synced<T>(lineId: string, attempt: () => Promise<T | NotSynced>): Promise<T> {
    open();
    for (let i = 0; i < 5; i++) {
      const result = await attempt();
      if (result !== NOT_SYNCED) return result;
      await resyncOnce(lineId);
    }
    throw new Error(`line ${lineId}: Redis lost the pause mirror again right after each resync`);
  }

  const signals = subscriber(client, onError);
  const channelOf = (lineId: string) => `${keyPrefix}line:{${lineId}}:signal`;
  function signal(lineId: string, message: 'stop' | 'want'): void {
    client.publish(channelOf(lineId), message).catch((err: Error) => onError?.(err));
  }

  return {
    kind: 'redis',

    async acquire(lineId, holder, ttlMs, opts) {
      assertLineId(lineId);
      assertTtl(ttlMs, maxTtlMs);
      const checked = checkHolder(holder);
      const json = JSON.stringify(checked);
      const k = keysOf(lineId);
      const got = await synced(lineId, async () =>
        decode.take(await scripts.lineAcquire(k.control, k.lease, k.counter, k.want, json, ttlMs, checked.kind, checked.node, wantMs, flag(opts?.held)), 'line-acquire'),
      );
      // A holder keeping its lease asks the store only now and then: tell it someone waits.
      if (!got.ok && got.reason === 'busy' && checked.kind === 'interactive') signal(lineId, 'want');
      return got;
    },

    async release(lineId, token, next) {
      assertLineId(lineId);
      assertToken(token);
      const k = keysOf(lineId);
      if (!next) {
        open();
        decode.released(await scripts.lineRelease(k.control, k.lease, k.counter, k.want, String(token), '', 0, '', '', '0'));
        return null;
      }
      assertTtl(next.ttlMs, maxTtlMs);
      const checked = checkHolder(next.holder);
      const json = JSON.stringify(checked);
      return synced(lineId, async () =>
        decode.take(
          await scripts.lineRelease(k.control, k.lease, k.counter, k.want, String(token), json, next.ttlMs, checked.kind, checked.node, flag(next.held)),
          'line-release',
        ),
      );
    },

    async pause(lineId, reason, by) {
      assertLineId(lineId);
      assertText('reason', reason);
      assertText('by', by);
      open();
      // The row stays locked until Redis has answered: no resync or resume can interleave, and
      // a failed commit leaves Redis paused and Postgres not, the safe way round (pause throws).
      // A step that timed out may still reach Redis after the rollback; its epoch is never
      // handed out again, so a newer state overrides it (see line-apply.lua).
      const state = await db.tx(async (tx) => {
        let paused: (StateRow & { changed: boolean }) | undefined;
        // No row only when a concurrent first write created the line's row; then it is locked and seen.
        for (let attempt = 0; attempt < 3 && !paused; attempt++) [paused] = (await tx.query(...args(sql.pause(lineId, reason, by)))).rows;
        if (!paused) throw new Error(`pause of line ${lineId} kept racing with the row's creation`);
        const [row] = (await tx.query<EpochRow>(...args(sql.bumpEpoch(lineId)))).rows;
        const inRedis = await apply(lineId, row!);
        return { ...toPauseState({ ...row!, holder: null }), inFlight: inRedis.state.inFlight, changed: paused.changed };
      });
      // Committed and mirrored: nothing takes the line any more. A holder keeping its lease may
      // still send under it until it hears of the pause, so the answer waits for it to stop.
      const lease = keysOf(lineId).lease;
      const stopped = await stopHeldLease(async () => decode.lease(await scripts.lineLease(lease)), () => signal(lineId, 'stop'), { pollMs: 2 });
      return stopped === undefined ? state : { ...state, inFlight: stopped };
    },

    async resume(lineId) {
      assertLineId(lineId);
      open();
      // Durable first: if Redis then fails, the line stays paused there (resume throws).
      const { changed, row } = await db.tx(async (tx) => {
        const [resumed] = (await tx.query<{ changed: boolean }>(...args(sql.resume(lineId)))).rows;
        const [row] = (await tx.query<EpochRow>(...args(sql.bumpEpoch(lineId)))).rows;
        return { changed: resumed?.changed ?? false, row: row! };
      });
      const inRedis = await apply(lineId, row);
      return { ...toPauseState({ ...row, holder: null }), inFlight: inRedis.state.inFlight, changed };
    },

    async state(lineId) {
      assertLineId(lineId);
      const k = keysOf(lineId);
      try {
        return await synced(lineId, async () => {
          const { ready, state } = decode.state(await scripts.lineState(k.control, k.lease), 'line-state');
          return ready ? state : NOT_SYNCED;
        });
      } catch (err) {
        if (closing) throw err;
        // Redis cannot be reached: the durable pause, from Postgres. Nothing takes the line
        // without Redis; a held lease may still be in use for up to its slack, unknown here.
        const [row] = (await db.query<StateRow>(...args(sql.state(lineId)))).rows;
        return { ...toPauseState(row), inFlight: null };
      }
    },

    hold: {
      async watch(lineId, onSignal) {
        assertLineId(lineId);
        open();
        return signals.watch(channelOf(lineId), (message) => {
          if (message === 'stop' || message === 'want') onSignal(message);
        });
      },
      async ack(lineId, token, inFlight) {
        assertLineId(lineId);
        assertToken(token);
        open();
        const json = inFlight ? JSON.stringify(checkHolder(inFlight)) : '';
        return decode.confirmed(await scripts.lineAck(keysOf(lineId).lease, String(token), json), 'line-ack');
      },
    },

    close() {
      closing ??= Promise.all([client.quit(), signals.close()]).then(() => {});
      return closing;
    },
  };
}

function args(q: sql.Query): [string, unknown[]] {
  return [q.text, q.values];
}
