import type { Sql } from '../db.ts';

export type SyncStatus = 'scheduled' | 'running' | 'retrying' | 'done' | 'cancelled_410' | 'failed';
export const SYNC_STATUSES: SyncStatus[] = ['scheduled', 'running', 'retrying', 'done', 'cancelled_410', 'failed'];
export const OPEN_STATUSES: SyncStatus[] = ['scheduled', 'running', 'retrying'];

export interface RunRow {
  id: string;
  insurerId: string;
  trigger: string;
  state: string;
  cursor: string | null;
  listingDone: boolean;
  listed: number;
  newPatients: number;
  removed: number;
  counts: Record<SyncStatus, number>;
  requestsMade: number;
  requestsFailed: number;
  startedAt: number;
  finishedAt: number | null;
  lastError: string | null;
}

function toRun(r: Record<string, any>): RunRow {
  return {
    id: r.id,
    insurerId: r.insurer_id,
    trigger: r.trigger,
    state: r.state,
    cursor: r.cursor,
    listingDone: r.listing_done,
    listed: r.listed,
    newPatients: r.new_patients,
    removed: r.removed,
    counts: Object.fromEntries(SYNC_STATUSES.map((s) => [s, r[s]])) as Record<SyncStatus, number>,
    requestsMade: r.requests_made,
    requestsFailed: r.requests_failed,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    lastError: r.last_error,
  };
}

/** Records a run; answers the run already in progress instead when there is one. */
export async function createRun(sql: Sql, run: { id: string; insurerId: string; trigger: string; now: number }): Promise<{ created: boolean; active: RunRow }> {
  const inserted = await sql.query(
    `INSERT INTO insurer_runs (id, insurer_id, trigger, state, started_at) VALUES ($1, $2, $3, 'listing', $4)
     ON CONFLICT DO NOTHING RETURNING *`,
    [run.id, run.insurerId, run.trigger, run.now],
  );
  if (inserted.rows[0]) return { created: true, active: toRun(inserted.rows[0]) };
  const existing = (await getRun(sql, run.id)) ?? (await activeRun(sql, run.insurerId));
  if (!existing) throw new Error('run could not be recorded');
  return { created: false, active: existing };
}

/** Removes a run that nothing was done for yet (no request made, nothing listed). */
export async function deleteUnstartedRun(sql: Sql, runId: string): Promise<void> {
  await sql.query(`DELETE FROM insurer_runs WHERE id = $1 AND requests_made = 0 AND listed = 0 AND scheduled = 0`, [runId]);
}

export async function getRun(sql: Sql, runId: string): Promise<RunRow | undefined> {
  const { rows } = await sql.query('SELECT * FROM insurer_runs WHERE id = $1', [runId]);
  return rows[0] ? toRun(rows[0]) : undefined;
}

export async function activeRun(sql: Sql, insurerId: string): Promise<RunRow | undefined> {
  const { rows } = await sql.query(`SELECT * FROM insurer_runs WHERE insurer_id = $1 AND state IN ('listing', 'syncing')`, [insurerId]);
  return rows[0] ? toRun(rows[0]) : undefined;
}

export async function latestRun(sql: Sql, insurerId: string): Promise<RunRow | undefined> {
  const { rows } = await sql.query('SELECT * FROM insurer_runs WHERE insurer_id = $1 ORDER BY started_at DESC, id DESC LIMIT 1', [insurerId]);
  return rows[0] ? toRun(rows[0]) : undefined;
}

export async function setRunState(sql: Sql, runId: string, state: 'syncing' | 'completed' | 'failed', opts: { now: number; error?: string | null }): Promise<void> {
  await sql.query(
    `UPDATE insurer_runs SET state = $2, finished_at = CASE WHEN $2 IN ('completed', 'failed') THEN $3 ELSE finished_at END,
            last_error = coalesce($4, last_error) WHERE id = $1`,
    [runId, state, opts.now, opts.error ?? null],
  );
}

export async function countRequests(sql: Sql, runId: string, made: number, failed: number, lastError: string | null): Promise<void> {
  await sql.query(
    'UPDATE insurer_runs SET requests_made = requests_made + $2, requests_failed = requests_failed + $3, last_error = coalesce($4, last_error) WHERE id = $1',
    [runId, made, failed, lastError],
  );
}
