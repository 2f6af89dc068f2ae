/**
 * All SQL of the line, as pure builders. Each operation is ONE statement, atomic under
 * concurrent processes: it locks the line's row first (`cur`/`prev`, FOR NO KEY UPDATE, which
 * in READ COMMITTED waits for and then returns the latest committed version), so the reason for
 * a refusal and the state a pause reports are exactly what the write was decided on.
 * Expiry uses the database clock, so the processes' clocks don't matter.
 */

export interface Query {
  text: string;
  values: unknown[];
}

/** Epoch ms on the database clock, read once per statement (a volatile CTE is not inlined). */
const NOW = `now AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ms)`;

/**
 * Skips the WAL flush for this statement's commit only (set_config(..., true) is SET LOCAL), in
 * one round trip instead of BEGIN / SET LOCAL / statement / COMMIT. Only for a plain release:
 * losing one in a crash leaves the line held until its lease expires, which is safe.
 */
const NO_FSYNC = `nofsync AS (SELECT set_config('synchronous_commit', 'off', true) AS v)`;

/** Row: token (null when refused), paused (null when the line had no row). */
export function acquire(lineId: string, holder: object, ttlMs: number): Query {
  return {
    text: `WITH ${NOW},
      cur AS (SELECT paused FROM lines WHERE id = $1 FOR NO KEY UPDATE),
      got AS (
        INSERT INTO lines AS l (id, holder, token, expires_at)
        SELECT $1, $2::jsonb, 1, now.ms + $3::bigint FROM now LEFT JOIN cur ON true
        ON CONFLICT (id) DO UPDATE
          SET holder = excluded.holder, token = l.token + 1, expires_at = excluded.expires_at
          WHERE NOT l.paused AND (l.expires_at IS NULL OR l.expires_at <= excluded.expires_at - $3::bigint)
        RETURNING l.token
      )
      SELECT (SELECT token FROM got) AS token, (SELECT paused FROM cur) AS paused`,
    values: [lineId, JSON.stringify(holder), ttlMs],
  };
}

/** Compare-and-release; no rows returned. */
export function release(lineId: string, token: number): Query {
  return {
    text: `WITH ${NO_FSYNC}
      UPDATE lines SET holder = NULL, expires_at = NULL
      FROM nofsync WHERE id = $1 AND token = $2 AND holder IS NOT NULL`,
    values: [lineId, token],
  };
}

/**
 * Releases `token`'s lease and gives the line to `next` in one statement: `next` gets it when
 * the line is not paused and is free once `token` has let go (held by `token`, released or
 * expired). Paused: `token` still lets go, `next` is refused. Row: token (null when refused), paused.
 */
export function handoff(lineId: string, token: number, next: object, ttlMs: number): Query {
  return {
    text: `WITH ${NOW},
      cur AS (SELECT paused FROM lines WHERE id = $1 FOR NO KEY UPDATE),
      got AS (
        INSERT INTO lines AS l (id, holder, token, expires_at)
        SELECT $1, $3::jsonb, 1, now.ms + $4::bigint FROM now LEFT JOIN cur ON true
        ON CONFLICT (id) DO UPDATE SET
          holder = CASE WHEN l.paused THEN NULL ELSE excluded.holder END,
          token = CASE WHEN l.paused THEN l.token ELSE l.token + 1 END,
          expires_at = CASE WHEN l.paused THEN NULL ELSE excluded.expires_at END
        WHERE (l.holder IS NOT NULL AND l.token = $2::bigint)
           OR (NOT l.paused AND (l.expires_at IS NULL OR l.expires_at <= excluded.expires_at - $4::bigint))
        RETURNING l.token, l.holder IS NOT NULL AS taken
      )
      SELECT (SELECT token FROM got WHERE taken) AS token, (SELECT paused FROM cur) AS paused`,
    values: [lineId, token, JSON.stringify(next), ttlMs],
  };
}

// Pause state with the unexpired holder, as pause/resume/state return it.
const STATE_COLUMNS = `r.paused, r.reason, r.paused_at, r.paused_by,
  CASE WHEN r.expires_at > now.ms THEN r.holder END AS holder`;

/**
 * Pauses unless already paused. Row: the state after (or, when already paused, as it was) and
 * `changed`. No row only when a concurrent first write created the line's row: run it again.
 */
export function pause(lineId: string, reason: string, by: string): Query {
  return {
    text: `WITH ${NOW},
      prev AS (SELECT * FROM lines WHERE id = $1 FOR NO KEY UPDATE),
      up AS (
        INSERT INTO lines AS l (id, paused, reason, paused_at, paused_by)
        SELECT $1, true, $2::text, now.ms, $3::text FROM now LEFT JOIN prev ON true
        ON CONFLICT (id) DO UPDATE
          SET paused = true, reason = excluded.reason, paused_at = excluded.paused_at, paused_by = excluded.paused_by
          WHERE NOT l.paused
        RETURNING l.*
      ),
      r AS (SELECT up.*, true AS changed FROM up
            UNION ALL SELECT prev.*, false FROM prev WHERE NOT EXISTS (SELECT FROM up))
      SELECT ${STATE_COLUMNS}, r.changed FROM r, now`,
    values: [lineId, reason, by],
  };
}

/** Resumes unless not paused. Row: the state after and `changed`; no row when the line has none. */
export function resume(lineId: string): Query {
  return {
    text: `WITH ${NOW},
      prev AS (SELECT * FROM lines WHERE id = $1 FOR NO KEY UPDATE),
      up AS (
        UPDATE lines l SET paused = false, reason = NULL, paused_at = NULL, paused_by = NULL
        FROM prev WHERE l.id = prev.id AND l.paused
        RETURNING l.*
      ),
      r AS (SELECT up.*, true AS changed FROM up
            UNION ALL SELECT prev.*, false FROM prev WHERE NOT EXISTS (SELECT FROM up))
      SELECT ${STATE_COLUMNS}, r.changed FROM r, now`,
    values: [lineId],
  };
}

/** Row: the state; no row when the line has none. */
export function state(lineId: string): Query {
  return {
    text: `WITH ${NOW} SELECT ${STATE_COLUMNS} FROM lines r, now WHERE r.id = $1`,
    values: [lineId],
  };
}

// Redis mode: Postgres holds only the pause and the epoch.

/** Bumps the epoch (creating the row). Row: paused, reason, paused_at, paused_by, epoch, mirrored. */
export function bumpEpoch(lineId: string): Query {
  return {
    text: `INSERT INTO lines AS l (id, epoch) VALUES ($1, 1)
      ON CONFLICT (id) DO UPDATE SET epoch = l.epoch + 1
      RETURNING paused, reason, paused_at, paused_by, epoch, mirrored`,
    values: [lineId],
  };
}

/**
 * Before a resync confirms its state: records that Redis may now hand out leases on the line,
 * only if `epoch` is still the current one (else nothing is written, and the resync must not
 * confirm). Row when it is: epoch.
 */
export function markMirrored(lineId: string, epoch: number): Query {
  return { text: `UPDATE lines SET mirrored = true WHERE id = $1 AND epoch = $2 RETURNING epoch`, values: [lineId, epoch] };
}
