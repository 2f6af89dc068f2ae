-- The lease as a pause waits on it.
-- KEYS[1] lease hash (see line-acquire.lua)
-- Returns {token, held '1'|'0'|'', stopped '1'|'', holder JSON, ms left (-2 when there is no lease)}.
local l = redis.call('HMGET', KEYS[1], 'token', 'held', 'stopped', 'holder')
return {l[1] or '', l[2] or '', l[3] or '', l[4] or '', redis.call('PTTL', KEYS[1])}
