import type { Sql } from '../db.ts';

/** Requests queued for an insurer's line, by kind. */
export interface QueueCounts {
  interactive: number;
  listing: number;
  bulk: number;
}

/**
 * Records what `node` has queued for the insurer's line. Skips the WAL flush: a write lost in a
 * crash only shows an older count, and the node's next change writes it again.
 */
export async function publishQueue(sql: Sql, insurerId: string, node: string, c: QueueCounts): Promise<void> {
  await sql.query(
    `WITH nofsync AS (SELECT set_config('synchronous_commit', 'off', true) AS v)
     INSERT INTO insurer_line_queues (insurer_id, node, interactive, listing, bulk) SELECT $1, $2, $3, $4, $5 FROM nofsync
     ON CONFLICT (insurer_id, node) DO UPDATE SET interactive = excluded.interactive, listing = excluded.listing, bulk = excluded.bulk`,
    [insurerId, node, c.interactive, c.listing, c.bulk],
  );
}

/** What the other live nodes have queued for the insurer's line, as they last recorded it. */
export async function queuedElsewhere(sql: Sql, insurerId: string, node: string): Promise<QueueCounts> {
  const { rows } = await sql.query<QueueCounts>(
    `SELECT coalesce(sum(interactive), 0)::int AS interactive, coalesce(sum(listing), 0)::int AS listing, coalesce(sum(bulk), 0)::int AS bulk
       FROM insurer_line_queues WHERE insurer_id = $1 AND node <> $2 AND node IN (SELECT actor_live_nodes())`,
    [insurerId, node],
  );
  return rows[0] ?? { interactive: 0, listing: 0, bulk: 0 };
}
