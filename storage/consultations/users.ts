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

  /** The user with this national id, created if new. Runs in `tx` when given. */
  async fetchOrCreate(u: NewUser, ctx: AuditContext, now: number, tx?: Sql): Promise<{ id: string; created: boolean }> {
    const run = async (sql: Sql) => {
      const hash = this.cipher.lookupHash(u.nationalId);
      const id = `usr_${randomUUID()}`;
      const { rows } = await sql.query<{ id: string; created: boolean }>(
        `WITH ins AS (
           INSERT INTO users (id, national_id_hash, national_id, first_name, last_name, email, phone, referred_by, marketing_opt_out)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           ON CONFLICT (national_id_hash) DO NOTHING RETURNING id)
         SELECT id, true AS created FROM ins
         UNION ALL SELECT id, false FROM users WHERE national_id_hash = $2 AND NOT EXISTS (SELECT 1 FROM ins)`,
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
      const row = rows[0];
      if (!row) throw new Error('user neither created nor found (a concurrent create; retry)');
      await appendAudit(sql, ctx, [{ action: row.created ? 'write' : 'read', resource: 'user', resourceId: row.id, scope: '' }], now);
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
