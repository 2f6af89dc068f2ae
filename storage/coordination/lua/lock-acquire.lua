-- Try to take a lock and hand out the next fencing token.
-- KEYS[1] lock key: holds the holder's token, expires after the TTL
-- KEYS[2] token counter for this lock name: never expires, so tokens never repeat
-- ARGV[1] ttl in ms (positive integer)
-- Returns {token, expiresAtMs} when acquired (token >= 1),
--         {-1, remainingTtlMs} when someone else holds the lock.
local held = redis.call('PTTL', KEYS[1])
if held ~= -2 then
  return {-1, held}
end
local ttl = tonumber(ARGV[1])
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token, 'PX', ttl)
-- Server time, so nodes with skewed clocks agree on expiresAt.
local t = redis.call('TIME')
return {token, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + ttl}
