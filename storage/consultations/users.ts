import { randomUUID } from 'node:crypto';
import { appendAudit, type AuditContext } from '../audit.ts';
import type { FieldCipher } from '../crypto.ts';
import type { Db, Sql } from '../db.ts';

export interface NewUser {
  nationalId: string;
  firstName: string;
  lastName: string;
  email?: string | undefined;
  phone?: string | undefined;
  /** The referring insurer: such users are tagged with it and never get marketing. */
  referredBy?: string | undefined;
}

export interface UserContact {
  id: string;
  email: string | null;
}

/**
 * Users by national id. Every value that identifies a person is sealed with its row's id and
 * field as associated data (a value copied to another row or column does not decrypt), and the
 * national id is looked up by a keyed hash. Each write and read of a user is audited in the
 * same transaction.
 */
export class UserStore {
  constructor(
    private readonly db: Db,
    readonly cipher: FieldCipher,
  ) {}

  private seal(id: string, field: string, value: string): string {
    return this.cipher.encrypt(value, `user/${id}/${field}`);
  }

  /**
   * The user with this national id, created if new. A known user gets the contact details given
   * (sealed for their own row) and, if referred now, the referral tag. Runs in `tx` when given.
   */
  async fetchOrCreate(u: NewUser, ctx: AuditContext, now: number, tx?: Sql): Promise<{ id: string; created: boolean }> {
    const run = async (sql: Sql) => {
      const hash = this.cipher.lookupHash(u.nationalId);
      const id = `usr_${randomUUID()}`;
      // DO UPDATE (a no-op write), not DO NOTHING: a concurrent insert of the same person is
      // waited for and its row returned, where DO NOTHING would return nothing at all.
      const { rows } = await sql.query<{ id: string; created: boolean }>(
        `INSERT INTO users (id, national_id_hash, national_id, first_name, last_name, email, phone, referred_by, marketing_opt_out)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (national_id_hash) DO UPDATE SET national_id_hash = excluded.national_id_hash
         RETURNING id, (xmax = 0) AS created`,
        [
          id,
          hash,
          this.seal(id, 'national_id', u.nationalId),
          this.seal(id, 'first_name', u.firstName),
          this.seal(id, 'last_name', u.lastName),
          u.email ? this.seal(id, 'email', u.email) : null,
          u.phone ? this.seal(id, 'phone', u.phone) : null,
          u.referredBy ?? null,
          u.referredBy !== undefined,
        ],
      );
      const row = rows[0]!;
      if (!row.created && (u.email || u.phone || u.referredBy !== undefined)) {
        await sql.query(
          `UPDATE users SET email = coalesce($2, email), phone = coalesce($3, phone),
                  referred_by = coalesce(referred_by, $4), marketing_opt_out = marketing_opt_out OR $5
            WHERE id = $1`,
          [row.id, u.email ? this.seal(row.id, 'email', u.email) : null, u.phone ? this.seal(row.id, 'phone', u.phone) : null, u.referredBy ?? null, u.referredBy !== undefined],
        );
      }
      await appendAudit(sql, ctx, [{ action: 'write', resource: 'user', resourceId: row.id, scope: row.created ? 'created' : 'updated' }], now);
      return row;
    };
    return tx ? run(tx) : this.db.tx(run);
  }

  /** The user's e-mail address (to send the consultation link), audited as a read. */
  async contact(userId: string, ctx: AuditContext, now: number): Promise<UserContact | undefined> {
    return this.db.tx(async (tx) => {
      const { rows } = await tx.query<{ id: string; email: string | null }>('SELECT id, email FROM users WHERE id = $1', [userId]);
      const r = rows[0];
      if (!r) return undefined;
      await appendAudit(tx, ctx, [{ action: 'read', resource: 'user', resourceId: r.id, scope: 'contact' }], now);
      return { id: r.id, email: r.email === null ? null : this.cipher.decrypt(r.email, `user/${r.id}/email`) };
    });
  }
}
