import type { Sql } from '../db.ts';
import { SYNC_STATUSES, type SyncStatus } from './runs.ts';

export interface SyncRow {
  id: string;
  insurerId: string;
  patientId: string;
  runId: string | null;
  kind: 'interactive' | 'bulk';
  status: SyncStatus;
  attempts: number;
  lastError: string | null;
  createdAt: number;
  updatedAt: number;
  finishedAt: number | null;
}

function toSync(r: Record<string, any>): SyncRow {
  return {
    id: r.id,
    insurerId: r.insurer_id,
    patientId: r.patient_id,
    runId: r.run_id,
    kind: r.kind,
    status: r.status,
    attempts: r.attempts,
    lastError: r.last_error,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    finishedAt: r.finished_at,
  };
}

export interface NewSync {
  id: string;
  insurerId: string;
  patientId: string;
  runId: string | null;
  kind: 'interactive' | 'bulk';
  requestedBy: string;
}

/** Records syncs as scheduled (a resend of a known id changes nothing); moves run counters. */
export async function scheduleSyncs(sql: Sql, syncs: NewSync[], now: number): Promise<number> {
  if (!syncs.length) return 0;
  const { rows } = await sql.query<{ run_id: string | null }>(
    `INSERT INTO patient_syncs (id, insurer_id, patient_id, run_id, kind, status, requested_by, created_at, updated_at)
     SELECT id, i, p, r, k, 'scheduled', b, $1, $1 FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) AS x(id, i, p, r, k, b)
     ON CONFLICT (id) DO NOTHING RETURNING run_id`,
    [now, syncs.map((s) => s.id), syncs.map((s) => s.insurerId), syncs.map((s) => s.patientId), syncs.map((s) => s.runId), syncs.map((s) => s.kind), syncs.map((s) => s.requestedBy)],
  );
  const perRun = new Map<string, number>();
  for (const r of rows) if (r.run_id) perRun.set(r.run_id, (perRun.get(r.run_id) ?? 0) + 1);
  for (const [runId, n] of perRun) await sql.query('UPDATE insurer_runs SET scheduled = scheduled + $2 WHERE id = $1', [runId, n]);
  return rows.length;
}

/**
 * Records an interactive sync of a stored patient, in one statement: false (nothing written)
 * when the insurer has no such patient.
 */
export async function scheduleInteractive(sql: Sql, sync: { id: string; insurerId: string; patientId: string; requestedBy: string }, now: number): Promise<boolean> {
  const { rowCount } = await sql.query(
    `INSERT INTO patient_syncs (id, insurer_id, patient_id, run_id, kind, status, requested_by, created_at, updated_at)
     SELECT $1, $2, $3, NULL, 'interactive', 'scheduled', $4, $5, $5
      WHERE EXISTS (SELECT 1 FROM insurer_patients WHERE insurer_id = $2 AND patient_id = $3)
     ON CONFLICT (id) DO NOTHING`,
    [sync.id, sync.insurerId, sync.patientId, sync.requestedBy, now],
  );
  return rowCount === 1;
}

/** Interactive syncs still scheduled (their event may not have reached the actor before a crash). */
export async function scheduledInteractive(sql: Sql, insurerId: string): Promise<{ id: string; patientId: string }[]> {
  const { rows } = await sql.query<{ id: string; patient_id: string }>(
    `SELECT id, patient_id FROM patient_syncs WHERE insurer_id = $1 AND kind = 'interactive' AND status = 'scheduled' ORDER BY created_at`,
    [insurerId],
  );
  return rows.map((r) => ({ id: r.id, patientId: r.patient_id }));
}

const toCounts = SYNC_STATUSES.map((col) => `count(*) FILTER (WHERE to_status = '${col}') AS to_${col}`).join(', ');
const fromCounts = SYNC_STATUSES.map((col) => `count(*) FILTER (WHERE prev = '${col}') AS from_${col}`).join(', ');

/** A move of the syncs one attempt served: `attempts` requests made since their last move, `failedRequests` of them failed. */
export interface SyncMove {
  ids: string[];
  to: SyncStatus;
  attempts?: number;
  failedRequests?: number;
  error?: string | null;
}

/**
 * Moves syncs to a status and the counters of their runs with them, in one statement.
 * `attempts` requests (of which `failedRequests` failed) were made since the last move; they
 * are counted once per run however many syncs they served.
 * Finished syncs (done, cancelled_410, failed) stay as they are.
 */
export function moveSyncs(sql: Sql, ids: string[], to: SyncStatus, opts: { now: number; attempts?: number; error?: string | null; failedRequests?: number }): Promise<void> {
  return moveSyncsMany(sql, [{ ids, to, attempts: opts.attempts, failedRequests: opts.failedRequests, error: opts.error }], opts.now);
}

/**
 * Many moves in one statement (see moveSyncs). Rows are locked in id order, so concurrent
 * writers of overlapping syncs wait for each other instead of deadlocking.
 */
export async function moveSyncsMany(sql: Sql, moves: SyncMove[], now: number): Promise<void> {
  const rows = moves.flatMap((m, grp) => m.ids.map((id) => ({ id, grp, m })));
  if (!rows.length) return;
  await sql.query(
    `WITH x AS (
       SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::int[], $5::int[], $6::text[]) AS x(id, grp, to_status, attempts, failed, error)
     ), prev AS (
       SELECT s.id, s.status AS prev, x.grp, x.to_status, x.attempts, x.failed, x.error
         FROM patient_syncs s JOIN x ON x.id = s.id
        WHERE s.status IN ('scheduled', 'running', 'retrying') ORDER BY s.id FOR UPDATE OF s
     ), moved AS (
       UPDATE patient_syncs s SET status = prev.to_status, attempts = s.attempts + prev.attempts, last_error = coalesce(prev.error, s.last_error), updated_at = $7,
              finished_at = CASE WHEN prev.to_status IN ('done', 'cancelled_410', 'failed') THEN $7 ELSE s.finished_at END
         FROM prev WHERE s.id = prev.id AND (prev.prev <> prev.to_status OR prev.attempts > 0 OR prev.error IS NOT NULL)
       RETURNING s.run_id, prev.prev, prev.to_status, prev.grp, prev.attempts, prev.failed, prev.error
     ), m AS (SELECT run_id, ${toCounts}, ${fromCounts} FROM moved WHERE run_id IS NOT NULL GROUP BY run_id
     ), per_move AS (SELECT DISTINCT ON (run_id, grp) run_id, grp, attempts, failed, error FROM moved WHERE run_id IS NOT NULL ORDER BY run_id, grp
     ), r AS (SELECT run_id, sum(attempts) AS made_n, sum(failed) AS failed_n, (array_agg(error ORDER BY grp DESC) FILTER (WHERE error IS NOT NULL))[1] AS error_n
                FROM per_move GROUP BY run_id)
     UPDATE insurer_runs run SET ${SYNC_STATUSES.map((col) => `${col} = ${col} + m.to_${col} - m.from_${col}`).join(', ')},
            requests_made = requests_made + r.made_n, requests_failed = requests_failed + r.failed_n, last_error = coalesce(r.error_n, run.last_error)
       FROM m JOIN r USING (run_id) WHERE run.id = m.run_id`,
    [
      rows.map((r) => r.id),
      rows.map((r) => r.grp),
      rows.map((r) => r.m.to),
      rows.map((r) => r.m.attempts ?? 0),
      rows.map((r) => r.m.failedRequests ?? 0),
      rows.map((r) => r.m.error ?? null),
      now,
    ],
  );
}

export async function getSync(sql: Sql, id: string): Promise<SyncRow | undefined> {
  const { rows } = await sql.query('SELECT * FROM patient_syncs WHERE id = $1', [id]);
  return rows[0] ? toSync(rows[0]) : undefined;
}

/** Syncs not finished yet, for re-sending their events after a restart. */
export async function openSyncs(sql: Sql, insurerId: string, afterId: string, limit: number): Promise<SyncRow[]> {
  const { rows } = await sql.query(
    `SELECT * FROM patient_syncs WHERE insurer_id = $1 AND status IN ('scheduled', 'running', 'retrying') AND id > $2 ORDER BY id LIMIT $3`,
    [insurerId, afterId, limit],
  );
  return rows.map(toSync);
}
