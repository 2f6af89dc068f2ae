-- Telemedicine: users (patients) referred or booked, referrals received, screening notes and
-- consultation results. Personal data is sealed (AES-256-GCM, key id in each value; see
-- storage/crypto.ts); the national id is found by a keyed hash, never by its plaintext.
CREATE TABLE users (
  id                text        PRIMARY KEY,
  national_id_hash  text        NOT NULL UNIQUE,
  national_id       text        NOT NULL,   -- sealed
  first_name        text        NOT NULL,   -- sealed
  last_name         text        NOT NULL,   -- sealed
  email             text,                   -- sealed
  phone             text,                   -- sealed
  referred_by       text,                   -- the referring insurer (users created from referrals)
  marketing_opt_out boolean     NOT NULL DEFAULT false,
  created_at        timestamptz NOT NULL DEFAULT now()
);

-- One row per referral the webhook accepted: a resent referral answers with the same booking.
CREATE TABLE referrals (
  journal_guid text        PRIMARY KEY,
  booking_id   text        NOT NULL UNIQUE,
  user_id      text        NOT NULL REFERENCES users (id),
  format_id    text        NOT NULL,
  received_ms  bigint      NOT NULL,            -- runtime clock: the booking's created_at
  received_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE screening_notes (
  id         bigserial   PRIMARY KEY,
  booking_id text        NOT NULL,
  at         bigint      NOT NULL,
  author     text        NOT NULL,
  note       text        NOT NULL            -- sealed
);
CREATE INDEX screening_notes_booking ON screening_notes (booking_id, id);

-- A consultation's result, a medical record: the whole of it sealed in one value.
CREATE TABLE consultation_results (
  consultation_id text        PRIMARY KEY,
  author_sp_id    text        NOT NULL,
  sealed          text        NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now()
);
