import { appendAudit, type AuditContext } from '../audit.ts';
import type { FieldCipher } from '../crypto.ts';
import type { Db, Sql } from '../db.ts';

/** A referral the webhook accepted: the booking and user it made. */
export interface ReferralRow {
  bookingId: string;
  userId: string;
  /** When it was received (runtime clock): the booking's created_at, however often it is resent. */
  receivedAt: number;
}

/** Records the referral (in `tx`); null when its JournalGuid was recorded before (then read it). */
export async function recordReferral(tx: Sql, r: { journalGuid: string; bookingId: string; userId: string; formatId: string; receivedAt: number }): Promise<boolean> {
  const { rowCount } = await tx.query(
    `INSERT INTO referrals (journal_guid, booking_id, user_id, format_id, received_ms) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (journal_guid) DO NOTHING`,
    [r.journalGuid, r.bookingId, r.userId, r.formatId, r.receivedAt],
  );
  return rowCount === 1;
}

export async function findReferral(sql: Sql, journalGuid: string): Promise<ReferralRow | undefined> {
  const { rows } = await sql.query<{ booking_id: string; user_id: string; received_ms: string }>('SELECT booking_id, user_id, received_ms FROM referrals WHERE journal_guid = $1', [journalGuid]);
  return rows[0] && { bookingId: rows[0].booking_id, userId: rows[0].user_id, receivedAt: Number(rows[0].received_ms) };
}

/** A screening call's note, sealed for its booking (a sealed note copied to another booking does not open). */
export async function addScreeningNote(sql: Sql, cipher: FieldCipher, bookingId: string, at: number, author: string, note: string): Promise<void> {
  await sql.query(`INSERT INTO screening_notes (booking_id, at, author, note) VALUES ($1, $2, $3, $4)`, [bookingId, at, author, cipher.encrypt(note, `screening_note/${bookingId}`)]);
}

/** A consultation result as the doctor gave it (validated by the route). */
export interface ConsultationResult {
  icpc2: string;
  outcome: string;
  patientSsn?: string | undefined;
  patientJobDescription?: string | undefined;
  authorSpId: string;
  notes?: string | undefined;
  policyNumber?: string | undefined;
}

/**
 * Consultation results: the whole result sealed as one value (associated data: the consultation
 * id), so the table holds no plaintext. Every write and read is audited in its transaction.
 */
export class ResultStore {
  constructor(
    private readonly db: Db,
    private readonly cipher: FieldCipher,
  ) {}

  /** Stores the result unless the consultation has one already; true when stored. */
  async store(consultationId: string, result: ConsultationResult, ctx: AuditContext, now: number): Promise<boolean> {
    return this.db.tx(async (tx) => {
      const sealed = this.cipher.encrypt(JSON.stringify(result), `consultation_result/${consultationId}`);
      const { rowCount } = await tx.query(
        `INSERT INTO consultation_results (consultation_id, author_sp_id, sealed) VALUES ($1, $2, $3)
         ON CONFLICT (consultation_id) DO UPDATE SET sealed = excluded.sealed, author_sp_id = excluded.author_sp_id
           WHERE consultation_results.author_sp_id = excluded.author_sp_id`,
        [consultationId, result.authorSpId, sealed],
      );
      if (rowCount) await appendAudit(tx, ctx, [{ action: 'write', resource: 'consultation_result', resourceId: consultationId, scope: '' }], now);
      return rowCount === 1;
    });
  }

  async remove(consultationId: string): Promise<void> {
    await this.db.query('DELETE FROM consultation_results WHERE consultation_id = $1', [consultationId]);
  }

  /** The author of a stored result (no decryption, no audit: it names staff, not the patient). */
  async author(consultationId: string): Promise<string | undefined> {
    const { rows } = await this.db.query<{ author_sp_id: string }>('SELECT author_sp_id FROM consultation_results WHERE consultation_id = $1', [consultationId]);
    return rows[0]?.author_sp_id;
  }

  /** The decrypted result, its read audited. */
  async read(consultationId: string, ctx: AuditContext, now: number): Promise<ConsultationResult | undefined> {
    return this.db.tx(async (tx) => {
      const { rows } = await tx.query<{ sealed: string }>('SELECT sealed FROM consultation_results WHERE consultation_id = $1', [consultationId]);
      if (!rows[0]) return undefined;
      await appendAudit(tx, ctx, [{ action: 'read', resource: 'consultation_result', resourceId: consultationId, scope: '' }], now);
      return JSON.parse(this.cipher.decrypt(rows[0].sealed, `consultation_result/${consultationId}`)) as ConsultationResult;
    });
  }
}

export interface ConsultationListed {
  consultationId: string;
  state: string;
  createdAt: number | null;
  bookingId: string | null;
  spId: string | null;
}

/** Consultations in a state, oldest first (the queue), from the actors' stored state. */
export async function listConsultations(sql: Sql, state: string, limit: number): Promise<ConsultationListed[]> {
  const { rows } = await sql.query<{ key: string; state: string; created: string | null; booking: string | null; sp: string | null }>(
    `SELECT key, state, (snapshot->'context'->>'createdAt') AS created, snapshot->'context'->>'bookingId' AS booking, snapshot->'context'->>'spId' AS sp
       FROM actors
      WHERE type = 'consultation' AND snapshot IS NOT NULL AND (state = $1 OR left(state, length($1) + 1) = $1 || '.')
      ORDER BY (snapshot->'context'->>'createdAt')::bigint, key LIMIT $2`,
    [state, limit],
  );
  return rows.map((r) => ({ consultationId: r.key, state: r.state, createdAt: r.created === null ? null : Number(r.created), bookingId: r.booking, spId: r.sp }));
}

export interface ReportRow {
  state: string;
  outcome: string | null;
  createdAt: number | null;
  startsAt: number | null;
  endsAt: number | null;
}

/** Consultations created in [from, to): times and outcome only (no personal data). */
export async function reportRows(sql: Sql, from: number, to: number): Promise<ReportRow[]> {
  const { rows } = await sql.query<{ state: string; outcome: string | null; created: string | null; starts: string | null; ends: string | null }>(
    `SELECT state, snapshot->'context'->>'outcome' AS outcome, snapshot->'context'->>'createdAt' AS created,
            snapshot->'context'->>'startsAt' AS starts, snapshot->'context'->>'endsAt' AS ends
       FROM actors WHERE type = 'consultation' AND snapshot IS NOT NULL
        AND (snapshot->'context'->>'createdAt')::bigint >= $1 AND (snapshot->'context'->>'createdAt')::bigint < $2`,
    [from, to],
  );
  const n = (v: string | null) => (v === null ? null : Number(v));
  return rows.map((r) => ({ state: r.state.split('.')[0]!, outcome: r.outcome, createdAt: n(r.created), startsAt: n(r.starts), endsAt: n(r.ends) }));
}
