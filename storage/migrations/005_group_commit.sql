-- A group commit is one statement (no BEGIN/COMMIT round trips). When fewer actor rows were
-- updated than the batch saves, some actor is owned under a newer epoch: this aborts the
-- statement, and with it every write of the batch.
CREATE FUNCTION actor_writes_refused(expected integer, written bigint) RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
  IF written <> expected THEN
    RAISE EXCEPTION 'state write refused: % actor(s) are owned under a newer epoch', expected - written
      USING ERRCODE = 'AR409';
  END IF;
  RETURN 0;
END
$$;
