-- Reset a lock's TTL, only for the current holder.
-- KEYS[1] lock key
-- ARGV[1] holder's fencing token, ARGV[2] new ttl in ms (positive integer)
-- Returns {1, expiresAtMs} when extended, {0, 0} when the token is not the current holder.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return {0, 0}
end
local ttl = tonumber(ARGV[2])
redis.call('PEXPIRE', KEYS[1], ttl)
local t = redis.call('TIME')
return {1, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + ttl}
