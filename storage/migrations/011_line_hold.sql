-- Lines in Postgres alone: a lease may be `held` by its process across several requests, sent
-- without a round trip each while enough of the lease is left and no signal came (as in Redis
-- mode). A pause then signals the holder (NOTIFY) and waits until it has `stopped`, naming in
-- `holder` the request it still has in flight (JSON null for none), or until the lease ends.
ALTER TABLE lines ADD COLUMN held boolean NOT NULL DEFAULT false, ADD COLUMN stopped boolean NOT NULL DEFAULT false;
