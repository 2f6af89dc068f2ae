-- Lines to external systems (one per insurer): the lease held by the ONE request in flight, and
-- the pause. The pause is always durable here; the lease lives here only without Redis.
-- Few rows, updated on every request: leave room on the page so updates stay HOT.
CREATE TABLE lines (
  id         text    PRIMARY KEY,
  paused     boolean NOT NULL DEFAULT false,
  reason     text,
  paused_at  bigint,                     -- epoch ms, database clock
  paused_by  text,
  -- Postgres mode: the lease. holder is NULL when released; expires_at is on the database clock.
  holder     jsonb,
  token      bigint  NOT NULL DEFAULT 0, -- last fencing token handed out
  expires_at bigint,                     -- epoch ms, database clock
  -- Redis mode: bumped by every pause, resume and resync. Redis orders pause states by it and,
  -- after losing its data, restarts fencing tokens above epoch * 1e9, so they never repeat.
  epoch      bigint  NOT NULL DEFAULT 0,
  -- Redis mode: set before Redis may first hand out a lease on this line. From then on, a lost
  -- Redis mirror means a lease may have been lost with it, still in flight.
  mirrored   boolean NOT NULL DEFAULT false
) WITH (fillfactor = 50);
