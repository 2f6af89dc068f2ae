-- Redis mode: line epochs come from one sequence, so no epoch is ever handed out twice, not even
-- when the transaction that took it rolls back (a pause whose Redis step timed out). Redis may
-- still run that step late; with a number that is never reused, a later resync tells its state
-- from a newer one (see storage/line/lua/line-apply.lua). Epochs still only grow per line, and
-- the sequence starts above every epoch already taken.
CREATE SEQUENCE line_epochs;
SELECT setval('line_epochs', greatest((SELECT max(epoch) FROM lines), 1));
