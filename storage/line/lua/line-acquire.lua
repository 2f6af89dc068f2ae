-- Take the line for one request: refused while paused or while a lease is held, and, for a bulk
-- request, while an interactive request of another process wants the line.
-- KEYS[1] control hash of the line (see line-apply.lua); missing or not ready: not synced
-- KEYS[2] lease hash {token, holder JSON}; expires after the TTL, on the Redis server's clock
-- KEYS[3] fencing-token counter; never expires
-- KEYS[4] want: the node whose interactive request waits for the line; expires after ARGV[5]
-- ARGV[1] holder JSON, ARGV[2] ttl in ms (positive integer), ARGV[3] the holder's kind
-- ('interactive' | 'bulk'), ARGV[4] the holder's node, ARGV[5] want ttl in ms,
-- ARGV[6] '1' when the holder keeps the lease for several requests (see line-ack.lua), else '0'
-- Returns the fencing token (>= 1) when taken, -1 busy, -2 paused,
--         -3 not synced (resync the pause from Postgres, then retry).
local control = redis.call('HMGET', KEYS[1], 'ready', 'paused')
if control[1] ~= '1' then return -3 end
if control[2] == '1' then return -2 end
local interactive = ARGV[3] == 'interactive'
if redis.call('EXISTS', KEYS[2]) == 1 then
  -- The holder's process lets go at its next handoff to bulk work.
  if interactive then redis.call('SET', KEYS[4], ARGV[4], 'PX', ARGV[5]) end
  return -1
end
local wanted = redis.call('GET', KEYS[4])
if wanted and wanted ~= ARGV[4] and not interactive then return -1 end
if wanted == ARGV[4] then redis.call('DEL', KEYS[4]) end
local token = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[2], 'token', string.format('%.0f', token), 'holder', ARGV[1], 'held', ARGV[6])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return token
