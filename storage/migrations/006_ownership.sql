-- Cluster ownership. Every process is a node: it registers in `nodes` and holds a session-level
-- advisory lock keyed by its id for as long as it lives, so a node is alive exactly while that
-- lock is held (a killed process loses its connection, and with it the lock, at once).
-- An actor is owned by the node that created or claimed it (`owner_node`); another node may
-- claim it only when that node is gone, and each claim bumps `owner_epoch`, which every state
-- write is conditional on.
CREATE TABLE nodes (
  node_id    text        PRIMARY KEY,
  started_at timestamptz NOT NULL DEFAULT now()
);

-- Nodes whose liveness lock is held (namespace 379423, key hashtext(node_id)).
CREATE FUNCTION actor_live_nodes() RETURNS SETOF text LANGUAGE sql STABLE AS $$
  SELECT n.node_id FROM nodes n
   WHERE EXISTS (
     SELECT 1 FROM pg_locks l
      WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND l.classid = 379423::oid
        AND l.objid = (hashtext(n.node_id)::bigint & 4294967295)::oid)
$$;

-- Journal seqs are handed out by the database (any node may append to any actor): the actor
-- row keeps the last one.
ALTER TABLE actors ADD COLUMN last_seq bigint NOT NULL DEFAULT 0;
UPDATE actors a SET last_seq = coalesce((SELECT max(seq) FROM journal j WHERE j.type = a.type AND j.key = a.key), 0);

-- No index involves last_seq or processed_seq: they change with every event, and an update
-- that touches no indexed column stays on its page (HOT), which the space left free in each
-- page makes room for. Nor is owner_node indexed: nearly every actor has the same owner, so
-- such an index only tempts the planner away from the primary key; the scans by owner (a
-- node's take-over) are rare and stop at their LIMIT.
ALTER TABLE actors SET (fillfactor = 85);
