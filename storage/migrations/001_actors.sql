-- Actors: one row per (type, key). The snapshot and processed_seq are always written together,
-- in one transaction, which is what makes state exactly-once.
CREATE TABLE actors (
  type          text        NOT NULL,
  key           text        NOT NULL,
  state         text        NOT NULL DEFAULT '',      -- dotted state path, e.g. 'armed' or 'sync.paging'
  status        text        NOT NULL DEFAULT 'active', -- XState status: active | done | error | stopped
  snapshot      jsonb,                                 -- XState persisted snapshot; NULL before the first event
  processed_seq bigint      NOT NULL DEFAULT 0,        -- highest journal seq reflected in snapshot
  -- Cluster ownership: the node holding the lease writes under its epoch; a stale epoch must fail.
  owner_node    text,
  owner_epoch   bigint      NOT NULL DEFAULT 0,
  lease_until   timestamptz,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (type, key)
);
CREATE INDEX actors_type_state ON actors (type, state, key);

-- The durable mailbox: an event is acknowledged only after its row is committed.
CREATE TABLE journal (
  type            text        NOT NULL,
  key             text        NOT NULL,
  seq             bigint      NOT NULL,
  event           jsonb       NOT NULL,
  idempotency_key text,
  received_at     bigint      NOT NULL,                -- runtime clock, epoch ms
  PRIMARY KEY (type, key, seq)
);
CREATE UNIQUE INDEX journal_idempotency ON journal (type, key, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- Inspection records: one per transition, whether caused by a journal event (seq set) or by
-- the actor itself (a timer firing, an invoked effect finishing).
CREATE TABLE transitions (
  id          bigserial   PRIMARY KEY,
  type        text        NOT NULL,
  key         text        NOT NULL,
  seq         bigint,
  event_type  text        NOT NULL,
  from_state  text        NOT NULL,
  to_state    text        NOT NULL,
  accepted    boolean     NOT NULL,
  at          bigint      NOT NULL                     -- runtime clock, epoch ms
);
CREATE INDEX transitions_actor ON transitions (type, key, id);

-- Durable timers: every pending delayed event of an actor with its absolute due time.
CREATE TABLE timers (
  type      text   NOT NULL,
  key       text   NOT NULL,
  timer_id  text   NOT NULL,
  event     jsonb  NOT NULL,
  due_at    bigint NOT NULL,                           -- runtime clock, epoch ms
  PRIMARY KEY (type, key, timer_id)
);
CREATE INDEX timers_due ON timers (due_at);
