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
  /** Set on the statements of every request (their text never varies): prepared once per connection. */
  name?: string;
}

/** Epoch ms on the database clock, read once per statement (a volatile CTE is not inlined). */
const NOW = `now AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ms)`;

/**
 * Skips the WAL flush for this statement's commit only (set_config(..., true) is SET LOCAL), in
 * one round trip instead of BEGIN / SET LOCAL / statement / COMMIT. Only for a plain release:
 * losing one in a crash leaves the line held until its lease expires, which is safe.
 */
const NO_FSYNC = `nofsync AS (SELECT set_config('synchronous_commit', 'off', true) AS v)`;

/**
 * The line row `l` is wanted by an interactive request of another process than the one `h`
 * (a holder as jsonb) belongs to, and `h` is not interactive itself: `h` must not have the line.
 */
const wantedElsewhere = (l: string, h: string, nowMs: string) =>
  `(${h}->>'kind' <> 'interactive' AND coalesce(${l}.wanted_until > ${nowMs}, false) AND ${l}.wanted_by IS DISTINCT FROM ${h}->>'node')`;

/** The want of `h`'s process is met once it holds the line: cleared (columns of an UPDATE SET). */
const clearOwnWant = (l: string, h: string) =>
  `wanted_by = CASE WHEN ${l}.wanted_by = ${h}->>'node' THEN NULL ELSE ${l}.wanted_by END,
   wanted_until = CASE WHEN ${l}.wanted_by = ${h}->>'node' THEN NULL ELSE ${l}.wanted_until END`;

/**
 * Row: token (null when refused), paused (null when the line had no row). An interactive
 * request refused because another holds the line records its want (see 007_line_wanted.sql) for
 * `wantMs`; that alone is not worth a WAL flush (lost, it only delays), so such a refusal
 * commits asynchronously.
 */
export function acquire(lineId: string, holder: object, ttlMs: number, wantMs: number, held = false): Query {
  return {
    text: `WITH ${NOW},
      cur AS (SELECT paused FROM lines WHERE id = $1 FOR NO KEY UPDATE),
      got AS (
        INSERT INTO lines AS l (id, holder, token, expires_at, held, stopped)
        SELECT $1, $2::jsonb, 1, now.ms + $3::bigint, $5::boolean, false FROM now LEFT JOIN cur ON true
        ON CONFLICT (id) DO UPDATE
          SET holder = excluded.holder, token = l.token + 1, expires_at = excluded.expires_at, held = excluded.held, stopped = false,
            ${clearOwnWant('l', 'excluded.holder')}
          WHERE NOT l.paused AND (l.expires_at IS NULL OR l.expires_at <= excluded.expires_at - $3::bigint)
            AND NOT ${wantedElsewhere('l', 'excluded.holder', 'excluded.expires_at - $3::bigint')}
        RETURNING l.token
      ),
      want AS (
        UPDATE lines l SET wanted_by = $2::jsonb->>'node', wanted_until = now.ms + $4::bigint
          FROM now WHERE l.id = $1 AND $2::jsonb->>'kind' = 'interactive' AND NOT l.paused AND NOT EXISTS (SELECT FROM got)
        RETURNING 1
      )
      SELECT (SELECT token FROM got) AS token, (SELECT paused FROM cur) AS paused,
        set_config('synchronous_commit', CASE WHEN EXISTS (SELECT FROM got) THEN current_setting('synchronous_commit') ELSE 'off' END, true) AS commit_mode,
        (SELECT count(*) FROM want) AS wants`,
    values: [lineId, JSON.stringify(holder), ttlMs, wantMs, held],
    name: 'line:acquire',
  };
}

/** Compare-and-release; no rows returned. */
export function release(lineId: string, token: number): Query {
  return {
    text: `WITH ${NO_FSYNC}
      UPDATE lines SET holder = NULL, expires_at = NULL
      FROM nofsync WHERE id = $1 AND token = $2 AND holder IS NOT NULL`,
    values: [lineId, token],
    name: 'line:release',
  };
}

/**
 * Releases `token`'s lease and gives the line to `next` in one statement: `next` gets it when
 * the line is not paused and is free once `token` has let go (held by `token`, released or
 * expired). Paused: `token` still lets go, `next` is refused. Row: token (null when refused), paused.
 */
export function handoff(lineId: string, token: number, next: object, ttlMs: number, held = false): Query {
  // Paused, or wanted by another process's interactive request while `next` is bulk: `token`
  // lets go and `next` is refused.
  const blocked = `(l.paused OR ${wantedElsewhere('l', 'excluded.holder', 'excluded.expires_at - $4::bigint')})`;
  return {
    text: `WITH ${NOW},
      cur AS (SELECT paused FROM lines WHERE id = $1 FOR NO KEY UPDATE),
      got AS (
        INSERT INTO lines AS l (id, holder, token, expires_at, held, stopped)
        SELECT $1, $3::jsonb, 1, now.ms + $4::bigint, $5::boolean, false FROM now LEFT JOIN cur ON true
        ON CONFLICT (id) DO UPDATE SET
          holder = CASE WHEN ${blocked} THEN NULL ELSE excluded.holder END,
          held = excluded.held, stopped = false,
          token = CASE WHEN ${blocked} THEN l.token ELSE l.token + 1 END,
          expires_at = CASE WHEN ${blocked} THEN NULL ELSE excluded.expires_at END,
          ${clearOwnWant('l', `(CASE WHEN ${blocked} THEN NULL ELSE excluded.holder END)`)}
        WHERE (l.holder IS NOT NULL AND l.token = $2::bigint)
           OR (NOT ${blocked} AND (l.expires_at IS NULL OR l.expires_at <= excluded.expires_at - $4::bigint))
        RETURNING l.token, l.holder IS NOT NULL AS taken
      )
      SELECT (SELECT token FROM got WHERE taken) AS token, (SELECT paused FROM cur) AS paused`,
    values: [lineId, token, JSON.stringify(next), ttlMs, held],
    name: 'line:handoff',
  };
}

/**
 * The holder of `token` keeps the line for its next request (`next`): same token, and, unless
 * less than `minLeftMs` of the lease is left, the same expiry. Then nothing durable changes (the
 * holder is informational), so the commit skips the WAL flush; a lease that is extended (to
 * `ttlMs` from now) is committed durably, before the request it covers is sent. The pause is
 * read from the locked row in the same statement: paused, or wanted by another process's
 * interactive request while `next` is bulk, the lease is let go and `next` refused.
 * Row: held (false when `token` no longer holds an unexpired lease: nothing was written),
 * token (null when refused), paused, extended.
 */
export function renew(lineId: string, token: number, next: object, ttlMs: number, minLeftMs: number, held = false): Query {
  return {
    text: `WITH ${NOW},
      cur AS (SELECT * FROM lines WHERE id = $1 FOR NO KEY UPDATE),
      d AS (
        SELECT cur.token = $2::bigint AND cur.holder IS NOT NULL AND cur.expires_at > now.ms AS held,
               cur.paused OR ${wantedElsewhere('cur', '$3::jsonb', 'now.ms')} AS blocked,
               cur.expires_at - now.ms < $5::bigint AS extend, cur.paused
          FROM cur, now
      ),
      kept AS (
        UPDATE lines l SET
          holder = CASE WHEN d.blocked THEN NULL ELSE $3::jsonb END,
          expires_at = CASE WHEN d.blocked THEN NULL WHEN d.extend THEN now.ms + $4::bigint ELSE l.expires_at END,
          held = $6::boolean, stopped = false,
          ${clearOwnWant('l', `(CASE WHEN d.blocked THEN NULL ELSE $3::jsonb END)`)}
          FROM d, now WHERE l.id = $1 AND d.held
        RETURNING NOT d.blocked AS taken, NOT d.blocked AND d.extend AS extended
      )
      SELECT coalesce((SELECT held FROM d), false) AS held,
        CASE WHEN (SELECT taken FROM kept) THEN $2::bigint END AS token,
        (SELECT paused FROM d) AS paused,
        coalesce((SELECT extended FROM kept), false) AS extended,
        set_config('synchronous_commit', CASE WHEN (SELECT extended FROM kept) THEN current_setting('synchronous_commit') ELSE 'off' END, true) AS commit_mode`,
    values: [lineId, token, JSON.stringify(next), ttlMs, minLeftMs, held],
    name: 'line:renew',
  };
}

/**
 * The holder of a `held` lease answers a pause: it has stopped starting requests; `inFlight`
 * (holder JSON, or JSON null) is the one still in flight under the lease. Informational, so
 * without a WAL flush. Row only when `token` still holds an unexpired lease.
 */
export function ack(lineId: string, token: number, inFlight: object | null): Query {
  return {
    text: `WITH ${NOW}, ${NO_FSYNC}
      UPDATE lines l SET stopped = true, holder = $3::jsonb
      FROM now, nofsync WHERE l.id = $1 AND l.token = $2 AND l.holder IS NOT NULL AND l.expires_at > now.ms
      RETURNING 1 AS acked`,
    values: [lineId, token, JSON.stringify(inFlight)],
    name: 'line:ack',
  };
}

/** The unexpired lease, as a pause waits on it. Row: a LeaseView; none when there is no lease. */
export function lease(lineId: string): Query {
  return {
    text: `WITH ${NOW}
      SELECT l.token, l.held, l.stopped, l.holder, l.expires_at - now.ms AS "leftMs"
        FROM lines l, now WHERE l.id = $1 AND l.holder IS NOT NULL AND l.expires_at > now.ms`,
    values: [lineId],
    name: 'line:lease',
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

/**
 * Gives the line a new epoch (creating the row), from a sequence: a number is never handed out
 * twice, even when the transaction that took it rolls back. Row: paused, reason, paused_at,
 * paused_by, epoch, and mirrored_epoch (null until a resync first recorded the line as mirrored).
 */
export function bumpEpoch(lineId: string): Query {
  return {
    text: `INSERT INTO lines AS l (id, epoch) VALUES ($1, nextval('line_epochs'))
      ON CONFLICT (id) DO UPDATE SET epoch = nextval('line_epochs')
      RETURNING paused, reason, paused_at, paused_by, epoch, mirrored_epoch`,
    values: [lineId],
  };
}

/**
 * Before a resync confirms its state: records that Redis may now hand out leases on the line,
 * only if `epoch` is still the current one (else nothing is written, and the resync must not
 * confirm). Row when it is: epoch.
 */
export function markMirrored(lineId: string, epoch: number): Query {
  return {
    text: `UPDATE lines SET mirrored_epoch = coalesce(mirrored_epoch, epoch) WHERE id = $1 AND epoch = $2 RETURNING epoch`,
    values: [lineId, epoch],
  };
}
