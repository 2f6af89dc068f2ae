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
  /** The node that owns the actor (null: nobody yet), and the epoch of its ownership. */
  owner_node: string | null;
  owner_epoch: number;
  updated_at: Date;
}

const ACTOR_COLUMNS = `state, status, snapshot, processed_seq, last_seq, owner_node, owner_epoch, updated_at,
            coalesce((SELECT json_agg(json_build_object('id', t.timer_id, 'event', t.event, 'dueAt', t.due_at) ORDER BY t.due_at)
                        FROM timers t WHERE t.type = a.type AND t.key = a.key), '[]') AS timers`;

/** Owned by nobody, or by a node that is gone: a node may claim it. */
const CLAIMABLE = `(a.owner_node IS NULL OR a.owner_node NOT IN (SELECT actor_live_nodes()))`;

/**
 * Many actors of one type in one round trip (the timer wheel wakes them in batches): those this
 * node owns, and those it may claim, claimed on the way. Actors of other live nodes are left out.
 */
export async function loadAndClaimActors(sql: Sql, type: string, keys: string[], node: string): Promise<Map<string, ActorRow>> {
  const { rows } = await sql.query<ActorRow & { key: string }>(
    `WITH claimed AS (
       UPDATE actors a SET owner_node = $3, owner_epoch = a.owner_epoch + 1
        WHERE a.type = $1 AND a.key = ANY($2::text[]) AND a.owner_node IS DISTINCT FROM $3 AND ${CLAIMABLE}
        RETURNING a.*)
     SELECT key, ${ACTOR_COLUMNS} FROM claimed a
     UNION ALL
     SELECT key, ${ACTOR_COLUMNS} FROM actors a WHERE a.type = $1 AND a.key = ANY($2::text[]) AND a.owner_node = $3`,
    [type, keys, node],
  );
  return new Map(rows.map((r) => [r.key, r]));
}

export async function loadActor(sql: Sql, type: string, key: string): Promise<ActorRow | undefined> {
  const { rows } = await sql.query<ActorRow>(`SELECT ${ACTOR_COLUMNS} FROM actors a WHERE type = $1 AND key = $2`, [type, key], 'actors:load');
  return rows[0];
}

/** Tells the node that owns an actor that its journal has events it has not seen. */
export async function notifyOwner(sql: Sql, type: string, key: string): Promise<void> {
  await sql.query(`SELECT pg_notify('actors_' || current_schema(), $1 || '/' || $2)`, [type, key]);
}

/** Registers a node; forgets nodes that are gone. */
export async function registerNode(sql: Sql, node: string): Promise<void> {
  await sql.query(`DELETE FROM nodes WHERE node_id NOT IN (SELECT actor_live_nodes())`);
  await sql.query(`INSERT INTO nodes (node_id) VALUES ($1) ON CONFLICT DO NOTHING`, [node]);
}

export async function loadTail(sql: Sql, type: string, key: string, afterSeq: number): Promise<{ seq: number; event: ActorEvent }[]> {
  const { rows } = await sql.query<{ seq: number; event: ActorEvent }>(
    'SELECT seq, event FROM journal WHERE type = $1 AND key = $2 AND seq > $3 ORDER BY seq',
    [type, key, afterSeq],
  );
  return rows;
}

/**
 * Actors with journal events nobody is processing: their owner is gone (a crash), or they have
 * none. Actors of live nodes, this one included, are left to their owner.
 */
export async function orphansWithBacklog(sql: Sql, node: string, limit: number): Promise<{ type: string; key: string }[]> {
  const { rows } = await sql.query(
    `SELECT a.type, a.key FROM actors a
      WHERE a.last_seq > a.processed_seq AND a.owner_node IS DISTINCT FROM $1 AND ${CLAIMABLE}
      LIMIT $2`,
    [node, limit],
  );
  return rows;
}

/** The nodes alive now. */
export async function liveNodes(sql: Sql): Promise<string[]> {
  const { rows } = await sql.query<{ node: string }>('SELECT n AS node FROM actor_live_nodes() n');
  return rows.map((r) => r.node);
}

/** Actors this node owns with journal events past their processed seq. */
export async function ownBacklog(sql: Sql, node: string, limit: number): Promise<{ type: string; key: string }[]> {
  const { rows } = await sql.query(`SELECT type, key FROM actors WHERE owner_node = $1 AND last_seq > processed_seq LIMIT $2`, [node, limit]);
  return rows;
}

/** Nodes that are gone but still recorded as the owner of some actor. */
export async function goneOwners(sql: Sql): Promise<string[]> {
  const { rows } = await sql.query<{ node: string }>(
    `SELECT DISTINCT owner_node AS node FROM actors WHERE owner_node IS NOT NULL AND owner_node NOT IN (SELECT actor_live_nodes())`,
  );
  return rows.map((r) => r.node);
}

/**
 * Takes over up to `limit` actors of a node that is gone (bumping each one's epoch): how many,
 * and those of them with unprocessed events or a running effect, which need waking.
 */
export async function adoptFrom(sql: Sql, gone: string, node: string, limit: number): Promise<{ adopted: number; pending: { type: string; key: string }[] }> {
  const { rows } = await sql.query<{ type: string; key: string; pending: boolean }>(
    `UPDATE actors a SET owner_node = $2, owner_epoch = a.owner_epoch + 1
      WHERE (a.type, a.key) IN (SELECT type, key FROM actors WHERE owner_node = $1 LIMIT $3 FOR UPDATE SKIP LOCKED)
        AND a.owner_node = $1 AND $1 NOT IN (SELECT actor_live_nodes())
      RETURNING a.type, a.key, (a.last_seq > a.processed_seq OR a.effects_in_flight) AS pending`,
    [gone, node, limit],
  );
  return { adopted: rows.length, pending: rows.filter((r) => r.pending) };
}

/** Actors saved while an invoked effect was running whose owner is gone, after `afterKey` (type/key order). */
export async function orphansWithEffects(sql: Sql, node: string, after: { type: string; key: string }, limit: number): Promise<{ type: string; key: string }[]> {
  const { rows } = await sql.query(
    `SELECT a.type, a.key FROM actors a
      WHERE a.effects_in_flight AND (a.type, a.key) > ($1, $2) AND a.owner_node IS DISTINCT FROM $3 AND ${CLAIMABLE}
      ORDER BY a.type, a.key LIMIT $4`,
    [after.type, after.key, node, limit],
  );
  return rows;
}

/**
 * Timers falling due up to `until`, earliest first, one row per actor, of actors this node owns
 * or may claim (a live node's timers are its own business).
 */
export async function dueTimers(sql: Sql, node: string, until: number, limit: number): Promise<{ type: string; key: string; due_at: number }[]> {
  // The owner is looked up per due actor by primary key (OFFSET 0 keeps the planner from
  // turning that into a scan of every actor).
  const { rows } = await sql.query(
    `SELECT t.type, t.key, t.due_at FROM (
       SELECT type, key, min(due_at) AS due_at FROM timers WHERE due_at <= $1 GROUP BY type, key ORDER BY min(due_at) LIMIT $2) t
     CROSS JOIN LATERAL (SELECT owner_node FROM actors a WHERE a.type = t.type AND a.key = t.key OFFSET 0) a
     WHERE a.owner_node = $3 OR ${CLAIMABLE}
     ORDER BY t.due_at`,
    [until, limit, node],
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

export async function countByState(sql: Sql): Promise<{ type: string; state: string; n: number }[]> {
  const { rows } = await sql.query<{ type: string; state: string; n: number }>(
    `SELECT type, state, count(*)::int AS n FROM actors WHERE snapshot IS NOT NULL GROUP BY type, state`,
  );
  return rows;
}
