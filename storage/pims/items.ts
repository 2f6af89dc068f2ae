import type { Sql } from '../db.ts';

/** A visit's cached line items as stored (items as the practice system sent them). */
export interface StoredItems {
  items: unknown[];
  fetchedAt: number;
  final: boolean;
}

/** Replaces the visit's cached items; an older fetch never overwrites a newer one. */
export async function saveItems(sql: Sql, visitId: string, items: unknown[], fetchedAt: number, final: boolean): Promise<void> {
  await sql.query(
    `INSERT INTO visit_line_items (visit_id, items, item_count, fetched_at, final) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (visit_id) DO UPDATE SET items = excluded.items, item_count = excluded.item_count, fetched_at = excluded.fetched_at, final = excluded.final
       WHERE visit_line_items.fetched_at <= excluded.fetched_at`,
    [visitId, JSON.stringify(items), items.length, fetchedAt, final],
    'pims:save-items',
  );
}

export async function readItems(sql: Sql, visitId: string): Promise<StoredItems | undefined> {
  const { rows } = await sql.query<{ items: unknown[]; fetched_at: string; final: boolean }>(
    'SELECT items, fetched_at, final FROM visit_line_items WHERE visit_id = $1',
    [visitId],
    'pims:read-items',
  );
  const r = rows[0];
  return r && { items: r.items, fetchedAt: Number(r.fetched_at), final: r.final };
}

export async function removeItems(sql: Sql, visitId: string): Promise<void> {
  await sql.query('DELETE FROM visit_line_items WHERE visit_id = $1', [visitId]);
}

export interface ListedVisit {
  visitId: string;
  state: string;
  fetchedAt: number | null;
  itemCount: number | null;
}

/**
 * Visit actors by state (a state and its substates: `open` takes `open.fresh`), in key order
 * after `afterKey`, with when their items were fetched. One indexed range read, no snapshot parsed.
 */
export async function listVisits(sql: Sql, state: string | undefined, afterKey: string, limit: number): Promise<ListedVisit[]> {
  const { rows } = await sql.query<{ key: string; state: string; fetched_at: string | null; item_count: number | null }>(
    `SELECT a.key, a.state, i.fetched_at, i.item_count FROM actors a
       LEFT JOIN visit_line_items i ON i.visit_id = a.key
      WHERE a.type = 'visit' AND a.key > $2 AND a.snapshot IS NOT NULL
        AND ($1::text IS NULL OR a.state = $1 OR left(a.state, length($1) + 1) = $1 || '.')
      ORDER BY a.key LIMIT $3`,
    [state ?? null, afterKey, limit],
  );
  return rows.map((r) => ({ visitId: r.key, state: r.state, fetchedAt: r.fetched_at === null ? null : Number(r.fetched_at), itemCount: r.item_count }));
}

/** Every visit actor that is open or closing (the census compares them with the practice system). */
export async function openVisitIds(sql: Sql): Promise<Map<string, string>> {
  const { rows } = await sql.query<{ key: string; state: string }>(
    `SELECT key, state FROM actors WHERE type = 'visit' AND left(state, 5) = 'open.'`,
  );
  return new Map(rows.map((r) => [r.key, r.state]));
}
