-- Take the line for one request: refused while paused or while a lease is held.
-- KEYS[1] control hash of the line (see line-apply.lua); missing or not ready: not synced
-- KEYS[2] lease hash {token, holder JSON}; expires after the TTL, on the Redis server's clock
-- KEYS[3] fencing-token counter; never expires
-- ARGV[1] holder JSON, ARGV[2] ttl in ms (positive integer)
-- Returns the fencing token (>= 1) when taken, -1 busy, -2 paused,
--         -3 not synced (resync the pause from Postgres, then retry).
local control = redis.call('HMGET', KEYS[1], 'ready', 'paused')
if control[1] ~= '1' then return -3 end
if control[2] == '1' then return -2 end
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local token = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[2], 'token', string.format('%.0f', token), 'holder', ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return token
