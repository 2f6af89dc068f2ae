-- Read the line's pause state and holder in one step.
-- KEYS[1] control hash, KEYS[2] lease hash (see line-apply.lua)
-- Returns {ready 1|0, paused '1'|'0', reason, pausedAt, pausedBy, holder JSON}, '' for absent
-- values; ready 0 means not synced (resync from Postgres, then read again).
local s = redis.call('HMGET', KEYS[1], 'ready', 'paused', 'reason', 'pausedAt', 'pausedBy')
return {s[1] == '1' and 1 or 0, s[2] or '', s[3] or '', s[4] or '', s[5] or '', redis.call('HGET', KEYS[2], 'holder') or ''}
