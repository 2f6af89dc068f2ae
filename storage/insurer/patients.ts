import { appendAudit, type AuditContext } from '../audit.ts';
import type { FieldCipher } from '../crypto.ts';
import type { Db, Sql } from '../db.ts';

export interface ListedPatient {
  id: string;
  firstName: string;
  lastName: string;
  birthDate: string;
}

export interface StoredPatient extends ListedPatient {
  insurerId: string;
  insured: boolean;
  recordsSyncedAt: number | null;
  careRecords: Record<string, unknown>[];
}

/**
 * The one path through which patient data is read, written or deleted. Every call writes its
 * audit records in the same transaction as the data, and names and birth dates are sealed with
 * the field cipher, bound to their row.
 */
export class PatientStore {
  constructor(
    private readonly db: Db,
    private readonly cipher: FieldCipher,
  ) {}

  private seal(insurerId: string, patientId: string, field: string, value: string): string {
    return this.cipher.encrypt(value, `${insurerId}/${patientId}/${field}`);
  }

  private open(insurerId: string, patientId: string, field: string, value: string): string {
    return this.cipher.decrypt(value, `${insurerId}/${patientId}/${field}`);
  }

  /**
   * Stores one listed page for a run (mark): new patients are inserted, known ones re-marked.
   * The run's cursor and counters move in the same transaction, so a resumed listing never
   * counts a page twice. Returns the ids that are new to this insurer. Runs in the caller's
   * transaction, so the new patients' syncs are scheduled with it.
   */
  async storePage(tx: Sql, insurerId: string, runId: string, listed: ListedPatient[], nextCursor: string | null, ctx: AuditContext, now: number): Promise<string[]> {
    // A page naming a patient twice would make the upsert touch one row twice.
    const page = [...new Map(listed.map((p) => [p.id, p])).values()];
    let fresh: string[] = [];
    if (page.length) {
      const { rows } = await tx.query<{ patient_id: string; inserted: boolean }>(
        `INSERT INTO insurer_patients AS p (insurer_id, patient_id, first_name, last_name, birth_date, seen_run, first_run, created_at, updated_at)
         SELECT $1, id, f, l, b, $2, $2, $3, $3 FROM unnest($4::text[], $5::text[], $6::text[], $7::text[]) AS x(id, f, l, b)
         ON CONFLICT (insurer_id, patient_id) DO UPDATE
           SET seen_run = EXCLUDED.seen_run, first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
               birth_date = EXCLUDED.birth_date, insured = true, updated_at = EXCLUDED.updated_at
         RETURNING patient_id, (xmax = 0) AS inserted`,
        [
          insurerId,
          runId,
          now,
          page.map((p) => p.id),
          page.map((p) => this.seal(insurerId, p.id, 'firstName', p.firstName)),
          page.map((p) => this.seal(insurerId, p.id, 'lastName', p.lastName)),
          page.map((p) => this.seal(insurerId, p.id, 'birthDate', p.birthDate)),
        ],
      );
      fresh = rows.filter((r) => r.inserted).map((r) => r.patient_id);
      await appendAudit(tx, ctx, page.map((p) => ({ action: 'write' as const, resource: 'patient', resourceId: p.id, scope: insurerId })), now);
    }
    await tx.query(
      `UPDATE insurer_runs SET cursor = $2, listing_done = $3, listed = listed + $4, new_patients = new_patients + $5 WHERE id = $1`,
      [runId, nextCursor, nextCursor === null, page.length, fresh.length],
    );
    return fresh;
  }

  /** Deletes the patients the completed listing of `runId` did not see (sweep). */
  async sweep(insurerId: string, runId: string, ctx: AuditContext, now: number): Promise<number> {
    return this.db.tx(async (tx) => {
      const { rows } = await tx.query<{ patient_id: string }>(
        `DELETE FROM insurer_patients WHERE insurer_id = $1 AND seen_run IS DISTINCT FROM $2 RETURNING patient_id`,
        [insurerId, runId],
      );
      await appendAudit(tx, ctx, rows.map((r) => ({ action: 'delete' as const, resource: 'patient', resourceId: r.patient_id, scope: insurerId })), now);
      await tx.query('UPDATE insurer_runs SET removed = removed + $2 WHERE id = $1', [runId, rows.length]);
      return rows.length;
    });
  }

  /** Replaces a patient's care records. False when the patient is no longer stored. */
  async storeCareRecords(tx: Sql, insurerId: string, patientId: string, records: { id: string }[], ctx: AuditContext, now: number): Promise<boolean> {
    const found = await tx.query('UPDATE insurer_patients SET records_synced_at = $3, insured = true, updated_at = $3 WHERE insurer_id = $1 AND patient_id = $2', [insurerId, patientId, now]);
    if (!found.rowCount) return false;
    await tx.query('DELETE FROM care_records WHERE insurer_id = $1 AND patient_id = $2', [insurerId, patientId]);
    if (records.length) {
      await tx.query(
        `INSERT INTO care_records (insurer_id, patient_id, record_id, body, stored_at)
         SELECT $1, $2, id, body, $3 FROM unnest($4::text[], $5::text[]) AS x(id, body)`,
        [insurerId, patientId, now, records.map((r) => r.id), records.map((r) => this.seal(insurerId, patientId, `care:${r.id}`, JSON.stringify(r)))],
      );
    }
    await appendAudit(tx, ctx, [{ action: 'write', resource: 'patient', resourceId: patientId, scope: insurerId }], now);
    return true;
  }

  /** 410: the patient is no longer insured. Their care records go; the patient is marked. */
  async compensate(tx: Sql, insurerId: string, patientId: string, ctx: AuditContext, now: number): Promise<void> {
    await tx.query('DELETE FROM care_records WHERE insurer_id = $1 AND patient_id = $2', [insurerId, patientId]);
    await tx.query('UPDATE insurer_patients SET insured = false, records_synced_at = NULL, updated_at = $3 WHERE insurer_id = $1 AND patient_id = $2', [insurerId, patientId, now]);
    await appendAudit(tx, ctx, [{ action: 'delete', resource: 'patient', resourceId: patientId, scope: insurerId }], now);
  }

  /** Reads patients with this id (one per insurer that lists it), decrypted, and audits it. */
  async read(patientId: string, ctx: AuditContext, now: number): Promise<StoredPatient[]> {
    return this.db.tx(async (tx) => {
      const { rows } = await tx.query(
        `SELECT insurer_id, patient_id, first_name, last_name, birth_date, insured, records_synced_at FROM insurer_patients WHERE patient_id = $1 ORDER BY insurer_id`,
        [patientId],
      );
      if (!rows.length) return [];
      const records = await tx.query(`SELECT insurer_id, record_id, body FROM care_records WHERE patient_id = $1 ORDER BY insurer_id, record_id`, [patientId]);
      await appendAudit(tx, ctx, rows.map((r) => ({ action: 'read' as const, resource: 'patient', resourceId: patientId, scope: r.insurer_id })), now);
      return rows.map((r) => ({
        insurerId: r.insurer_id,
        id: r.patient_id,
        firstName: this.open(r.insurer_id, patientId, 'firstName', r.first_name),
        lastName: this.open(r.insurer_id, patientId, 'lastName', r.last_name),
        birthDate: this.open(r.insurer_id, patientId, 'birthDate', r.birth_date),
        insured: r.insured,
        recordsSyncedAt: r.records_synced_at,
        careRecords: records.rows
          .filter((c) => c.insurer_id === r.insurer_id)
          .map((c) => JSON.parse(this.open(r.insurer_id, patientId, `care:${c.record_id}`, c.body)) as Record<string, unknown>),
      }));
    });
  }
}
