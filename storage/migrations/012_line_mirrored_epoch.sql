-- Redis mode: the epoch whose resync first let Redis hand out leases on the line, instead of a
-- flag. A mirror that is being rebuilt (present, not yet confirmed) from an epoch at or above it
-- was set up by that very resync or after it, with the quarantine already decided, and no lease
-- can have been lost since; one from an older epoch may have been rebuilt by a process that read
-- the line before it was ever mirrored, after Redis lost a lease, so it is quarantined. A flag
-- could not tell these apart, and two processes setting a new line up at once kept it busy.
-- Lines mirrored before this migration take their current epoch: the cautious reading.
ALTER TABLE lines ADD COLUMN mirrored_epoch bigint;
UPDATE lines SET mirrored_epoch = epoch WHERE mirrored;
ALTER TABLE lines DROP COLUMN mirrored;
