import { createHash } from 'node:crypto';
import type { Sql } from './db.ts';

/** Who touched patient data, and why: a user (subject + role) or a system actor (role 'system'). */
export interface AuditContext {
  principal: string;
  role: string;
  /** A run id, a sync id or a request id. */
  reason: string;
}

export interface AuditEntry {
  action: 'read' | 'write' | 'delete';
  resource: string;
  resourceId: string;
  /** Where the resource lives, e.g. the insurer id ('' when it needs none). */
  scope: string;
}

export interface AuditRow extends AuditContext, AuditEntry {
  id: number;
  at: number;
  prevHash: string;
  hash: string;
}

const GENESIS = '0'.repeat(64);
// Serialises appends so each record can name the one before it.
const AUDIT_LOCK = 0x0a0d17;

function chainHash(prev: string, at: number, ctx: AuditContext, e: AuditEntry): string {
  return createHash('sha256')
    .update(prev)
    .update('\n')
    .update(JSON.stringify([at, ctx.principal, ctx.role, e.action, e.resource, e.resourceId, e.scope, ctx.reason]))
    .digest('hex');
}

/**
 * Appends audit records inside the caller's transaction, so the access and its record commit
 * together. The table refuses updates and deletes (a trigger), and each record chains the hash
 * of the previous one.
 */
export async function appendAudit(tx: Sql, ctx: AuditContext, entries: AuditEntry[], at: number): Promise<void> {
  if (!entries.length) return;
  await tx.query('SELECT pg_advisory_xact_lock($1)', [AUDIT_LOCK]);
  const last = await tx.query<{ hash: string }>('SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1');
  let prev = last.rows[0]?.hash ?? GENESIS;
  const prevs: string[] = [];
  const hashes: string[] = [];
  for (const e of entries) {
    prevs.push(prev);
    prev = chainHash(prev, at, ctx, e);
    hashes.push(prev);
  }
  await tx.query(
    `INSERT INTO audit_log (at, principal, role, action, resource, resource_id, scope, reason, prev_hash, hash)
     SELECT $1, $2, $3, a, r, i, s, $4, p, h
       FROM unnest($5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[]) WITH ORDINALITY AS x(a, r, i, s, p, h, n)
      ORDER BY n`,
    [
      at,
      ctx.principal,
      ctx.role,
      ctx.reason,
      entries.map((e) => e.action),
      entries.map((e) => e.resource),
      entries.map((e) => e.resourceId),
      entries.map((e) => e.scope),
      prevs,
      hashes,
    ],
  );
}

export async function auditTrail(sql: Sql, resource: string, resourceId: string, afterId = 0, limit = 100): Promise<AuditRow[]> {
  const { rows } = await sql.query(
    `SELECT id, at, principal, role, action, resource, resource_id, scope, reason, prev_hash, hash FROM audit_log
      WHERE resource_id = $2 AND resource = $1 AND id > $3 ORDER BY id LIMIT $4`,
    [resource, resourceId, afterId, limit],
  );
  return rows.map((r) => ({
    id: r.id,
    at: r.at,
    principal: r.principal,
    role: r.role,
    action: r.action,
    resource: r.resource,
    resourceId: r.resource_id,
    scope: r.scope,
    reason: r.reason,
    prevHash: r.prev_hash,
    hash: r.hash,
  }));
}

/** Recomputes the whole chain; returns the id of the first broken record, or null. */
export async function verifyAuditChain(sql: Sql): Promise<number | null> {
  const { rows } = await sql.query('SELECT id, at, principal, role, action, resource, resource_id, scope, reason, prev_hash, hash FROM audit_log ORDER BY id');
  let prev = GENESIS;
  for (const r of rows) {
    const expected = chainHash(prev, r.at, r, { action: r.action, resource: r.resource, resourceId: r.resource_id, scope: r.scope });
    if (r.prev_hash !== prev || r.hash !== expected) return r.id;
    prev = r.hash;
  }
  return null;
}
