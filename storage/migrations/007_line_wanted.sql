-- Lines: an interactive request of one process waiting for a line another process holds. While
-- `wanted_until` (database clock, epoch ms) has not passed, the line is not handed to, nor taken
-- by, a bulk request of any other process than `wanted_by`: the holder lets go after its request
-- and the waiting process gets in. Interactive requests go before bulk ones across processes, as
-- they do within one. Written by every refused interactive acquire; losing it only delays.
ALTER TABLE lines ADD COLUMN wanted_by text, ADD COLUMN wanted_until bigint;
