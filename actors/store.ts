import type { Sql } from '../storage/db.ts';
import type { ActorEvent, PendingTimer } from './types.ts';

/** All SQL the runtime runs, one function per statement; values always as parameters. */

export interface ActorRow {
  /** Pending timers, loaded with the row (one round trip to activate an actor). */
  timers: PendingTimer[];
  state: string;
  status: string;
  snapshot: unknown;
  processed_seq: number;
  last_seq: number;
  owner_epoch: number;
  updated_at: Date;
}

const ACTOR_COLUMNS = `state, status, snapshot, processed_seq, owner_epoch, updated_at,
            coalesce((SELECT max(seq) FROM journal j WHERE j.type = a.type AND j.key = a.key), 0) AS last_seq,
            coalesce((SELECT json_agg(json_build_object('id', t.timer_id, 'event', t.event, 'dueAt', t.due_at) ORDER BY t.due_at)
                        FROM timers t WHERE t.type = a.type AND t.key = a.key), '[]') AS timers`;

/** Many actors of one type in one round trip (the timer wheel wakes them in batches). */
export async function loadActors(sql: Sql, type: string, keys: string[]): Promise<Map<string, ActorRow>> {
  const { rows } = await sql.query<ActorRow & { key: string }>(`SELECT key, ${ACTOR_COLUMNS} FROM actors a WHERE type = $1 AND key = ANY($2::text[])`, [type, keys]);
  return new Map(rows.map((r) => [r.key, r]));
}

export async function loadActor(sql: Sql, type: string, key: string): Promise<ActorRow | undefined> {
  const { rows } = await sql.query<ActorRow>(
    `SELECT state, status, snapshot, processed_seq, owner_epoch, updated_at,
            coalesce((SELECT max(seq) FROM journal j WHERE j.type = a.type AND j.key = a.key), 0) AS last_seq,
            coalesce((SELECT json_agg(json_build_object('id', t.timer_id, 'event', t.event, 'dueAt', t.due_at) ORDER BY t.due_at)
                        FROM timers t WHERE t.type = a.type AND t.key = a.key), '[]') AS timers
       FROM actors a WHERE type = $1 AND key = $2`,
    [type, key],
  );
  return rows[0];
}

export async function loadTail(sql: Sql, type: string, key: string, afterSeq: number): Promise<{ seq: number; event: ActorEvent }[]> {
  const { rows } = await sql.query<{ seq: number; event: ActorEvent }>(
    'SELECT seq, event FROM journal WHERE type = $1 AND key = $2 AND seq > $3 ORDER BY seq',
    [type, key, afterSeq],
  );
  return rows;
}

/** Actors whose journal holds events they have not processed (work left by a crash). */
export async function actorsWithBacklog(sql: Sql, limit: number): Promise<{ type: string; key: string }[]> {
  const { rows } = await sql.query(
    `SELECT a.type, a.key FROM actors a
      WHERE EXISTS (SELECT 1 FROM journal j WHERE j.type = a.type AND j.key = a.key AND j.seq > a.processed_seq)
      LIMIT $1`,
    [limit],
  );
  return rows;
}

/** Actors saved while an invoked effect was running, after `afterKey` (type/key order). */
export async function actorsWithEffects(sql: Sql, after: { type: string; key: string }, limit: number): Promise<{ type: string; key: string }[]> {
  const { rows } = await sql.query(
    `SELECT type, key FROM actors WHERE effects_in_flight AND (type, key) > ($1, $2) ORDER BY type, key LIMIT $3`,
    [after.type, after.key, limit],
  );
  return rows;
}

/** Timers falling due up to `until`, earliest first, one row per actor. */
export async function dueTimers(sql: Sql, until: number, limit: number): Promise<{ type: string; key: string; due_at: number }[]> {
  const { rows } = await sql.query(
    `SELECT type, key, min(due_at) AS due_at FROM timers WHERE due_at <= $1
      GROUP BY type, key ORDER BY min(due_at) LIMIT $2`,
    [until, limit],
  );
  return rows;
}

export interface HistoryRow {
  id: number;
  seq: number | null;
  event_type: string;
  from_state: string;
  to_state: string;
  accepted: boolean;
  at: number;
}

export async function history(sql: Sql, type: string, key: string, afterId: number, limit: number): Promise<HistoryRow[]> {
  const { rows } = await sql.query<HistoryRow>(
    `SELECT id, seq, event_type, from_state, to_state, accepted, at FROM transitions
      WHERE type = $1 AND key = $2 AND id > $3 ORDER BY id LIMIT $4`,
    [type, key, afterId, limit],
  );
  return rows;
}

export async function journalEvents(sql: Sql, type: string, key: string, seqs: number[]): Promise<Map<number, { event: ActorEvent; receivedAt: number }>> {
  const { rows } = await sql.query<{ seq: number; event: ActorEvent; received_at: number }>(
    'SELECT seq, event, received_at FROM journal WHERE type = $1 AND key = $2 AND seq = ANY($3::bigint[])',
    [type, key, seqs],
  );
  return new Map(rows.map((r) => [r.seq, { event: r.event, receivedAt: r.received_at }]));
}

export interface ListedActor {
  key: string;
  state: string;
  status: string;
  processed_seq: number;
  updated_at: Date;
}

export async function listActors(sql: Sql, type: string, state: string | undefined, afterKey: string, limit: number): Promise<ListedActor[]> {
  const { rows } = await sql.query<ListedActor>(
    `SELECT key, state, status, processed_seq, updated_at FROM actors
      WHERE type = $1 AND key > $2 AND snapshot IS NOT NULL
        AND ($3::text IS NULL OR state = $3 OR left(state, length($3) + 1) = $3 || '.')
      ORDER BY key LIMIT $4`,
    [type, afterKey, state ?? null, limit],
  );
  return rows;
}
