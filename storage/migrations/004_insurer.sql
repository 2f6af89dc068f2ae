-- Insurer patient sync. Patient names and birth dates, and care records, are stored encrypted
-- (storage/crypto.ts); ids are the insurer's own patient ids.
CREATE TABLE insurer_runs (
  id            text   PRIMARY KEY,
  insurer_id    text   NOT NULL,
  trigger       text   NOT NULL,                 -- daily | manual
  state         text   NOT NULL,                 -- listing | syncing | completed | failed
  cursor        text,                            -- next list page; NULL = first page
  listing_done  boolean NOT NULL DEFAULT false,
  listed        integer NOT NULL DEFAULT 0,
  new_patients  integer NOT NULL DEFAULT 0,
  removed       integer NOT NULL DEFAULT 0,
  -- Live counters, moved in the same transaction as each patient sync's status, so reading
  -- progress never scans patients.
  scheduled     integer NOT NULL DEFAULT 0,
  running       integer NOT NULL DEFAULT 0,
  retrying      integer NOT NULL DEFAULT 0,
  done          integer NOT NULL DEFAULT 0,
  cancelled_410 integer NOT NULL DEFAULT 0,
  failed        integer NOT NULL DEFAULT 0,
  requests_made   integer NOT NULL DEFAULT 0,
  requests_failed integer NOT NULL DEFAULT 0,
  started_at    bigint NOT NULL,
  finished_at   bigint,
  last_error    text
);
CREATE INDEX insurer_runs_insurer ON insurer_runs (insurer_id, started_at DESC);
-- At most one run in progress per insurer, whatever the number of processes.
CREATE UNIQUE INDEX insurer_runs_one_active ON insurer_runs (insurer_id) WHERE state IN ('listing', 'syncing');

CREATE TABLE insurer_patients (
  insurer_id    text    NOT NULL,
  patient_id    text    NOT NULL,
  first_name    text    NOT NULL,                -- encrypted
  last_name     text    NOT NULL,                -- encrypted
  birth_date    text    NOT NULL,                -- encrypted
  insured       boolean NOT NULL DEFAULT true,
  seen_run      text,                            -- mark and sweep: the last run that listed it
  first_run     text,                            -- the run that first listed it
  records_synced_at bigint,
  created_at    bigint  NOT NULL,
  updated_at    bigint  NOT NULL,
  PRIMARY KEY (insurer_id, patient_id)
);
CREATE INDEX insurer_patients_seen ON insurer_patients (insurer_id, seen_run);

CREATE TABLE care_records (
  insurer_id  text   NOT NULL,
  patient_id  text   NOT NULL,
  record_id   text   NOT NULL,
  body        text   NOT NULL,                   -- encrypted JSON of the record
  stored_at   bigint NOT NULL,
  PRIMARY KEY (insurer_id, patient_id, record_id),
  FOREIGN KEY (insurer_id, patient_id) REFERENCES insurer_patients ON DELETE CASCADE
);

-- One row per patient sync (bulk, from a run, or interactive, from the API).
CREATE TABLE patient_syncs (
  id           text   PRIMARY KEY,
  insurer_id   text   NOT NULL,
  patient_id   text   NOT NULL,
  run_id       text,
  kind         text   NOT NULL,                  -- interactive | bulk
  status       text   NOT NULL,                  -- scheduled | running | retrying | done | cancelled_410 | failed
  attempts     integer NOT NULL DEFAULT 0,
  last_error   text,
  requested_by text,
  created_at   bigint NOT NULL,
  updated_at   bigint NOT NULL,
  finished_at  bigint
);
CREATE INDEX patient_syncs_run ON patient_syncs (run_id, status);
CREATE INDEX patient_syncs_open ON patient_syncs (insurer_id, status) WHERE status IN ('scheduled', 'running', 'retrying');

-- Append-only audit log; each record carries the hash of the one before it.
CREATE TABLE audit_log (
  id            bigserial PRIMARY KEY,
  at            bigint NOT NULL,
  principal     text   NOT NULL,                 -- user subject or system actor, e.g. insurer/KK01
  role          text   NOT NULL,                 -- admin | auditor | ... | system
  action        text   NOT NULL,                 -- read | write | delete
  resource      text   NOT NULL,                 -- e.g. patient
  resource_id   text   NOT NULL,                 -- e.g. the patient id
  scope         text   NOT NULL,                 -- where it lives, e.g. the insurer id
  reason        text   NOT NULL,                 -- run id or request id
  prev_hash     text   NOT NULL,
  hash          text   NOT NULL
);
CREATE INDEX audit_log_resource ON audit_log (resource_id, resource, id);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
