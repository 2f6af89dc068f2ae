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

const delta = (col: SyncStatus) => `${col} = ${col} + (CASE WHEN $2 = '${col}' THEN m.n ELSE 0 END) - m.from_${col}`;
const fromCounts = SYNC_STATUSES.map((col) => `count(*) FILTER (WHERE prev = '${col}') AS from_${col}`).join(', ');

/**
 * Moves syncs to a status and the counters of their runs with them, in one statement.
 * `attempts` requests (of which `failedRequests` failed) were made since the last move; they
 * are counted once per run however many syncs they served.
 * Finished syncs (done, cancelled_410, failed) stay as they are.
 */
export async function moveSyncs(
  sql: Sql,
  ids: string[],
  to: SyncStatus,
  opts: { now: number; attempts?: number; error?: string | null; failedRequests?: number },
): Promise<void> {
  if (!ids.length) return;
  const finished = to === 'done' || to === 'cancelled_410' || to === 'failed';
  await sql.query(
    `WITH prev AS (
       SELECT id, status AS prev FROM patient_syncs WHERE id = ANY($1::text[]) AND status IN ('scheduled', 'running', 'retrying') FOR UPDATE
     ), moved AS (
       UPDATE patient_syncs s SET status = $2, attempts = attempts + $3, last_error = coalesce($4, last_error), updated_at = $5,
              finished_at = CASE WHEN $6 THEN $5 ELSE finished_at END
         FROM prev WHERE s.id = prev.id AND (prev.prev <> $2 OR $3 > 0 OR $4::text IS NOT NULL) RETURNING s.run_id, prev.prev
     ), m AS (SELECT run_id, count(*) AS n, ${fromCounts} FROM moved WHERE run_id IS NOT NULL GROUP BY run_id)
     UPDATE insurer_runs r SET ${SYNC_STATUSES.map(delta).join(', ')},
            requests_made = requests_made + $3, requests_failed = requests_failed + $7, last_error = coalesce($4, r.last_error)
       FROM m WHERE r.id = m.run_id`,
    [ids, to, opts.attempts ?? 0, opts.error ?? null, opts.now, finished, opts.failedRequests ?? 0],
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
