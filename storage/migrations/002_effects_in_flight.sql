-- Actors whose last saved state has an invoked effect running. A process that died while the
-- effect ran restarts them at boot, so the effect runs again (at-least-once effects).
ALTER TABLE actors ADD COLUMN effects_in_flight boolean NOT NULL DEFAULT false;
CREATE INDEX actors_effects_in_flight ON actors (type, key) WHERE effects_in_flight;
