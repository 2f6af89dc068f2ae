-- Release a lease if the token still holds it; with a next holder, hand the line over in the
-- same step (still refused while paused, and refused to a bulk next holder while an interactive
-- request of another process wants the line: the lease is let go, so that process gets in).
-- KEYS[1] control hash, KEYS[2] lease hash, KEYS[3] fencing-token counter, KEYS[4] want
-- (as in line-acquire.lua)
-- ARGV[1] releasing token, ARGV[2] next holder JSON ('' for none), ARGV[3] next ttl in ms,
-- ARGV[4] the next holder's kind, ARGV[5] its node, ARGV[6] '1' when it keeps the lease for
-- several requests (see line-ack.lua), else '0'
-- Returns without a next holder: 1 released, 0 the token did not hold the lease.
-- Returns with a next holder: its fencing token (>= 1) when taken, -1 busy (someone else holds
--         the line, or wants it), -2 paused, -3 not synced (resync, then retry: the release part
--         is idempotent).
local released = 0
if redis.call('HGET', KEYS[2], 'token') == ARGV[1] then
  redis.call('DEL', KEYS[2])
  released = 1
end
if ARGV[2] == '' then return released end
local control = redis.call('HMGET', KEYS[1], 'ready', 'paused')
if control[1] ~= '1' then return -3 end
if control[2] == '1' then return -2 end
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local wanted = redis.call('GET', KEYS[4])
if wanted and wanted ~= ARGV[5] and ARGV[4] ~= 'interactive' then return -1 end
if wanted == ARGV[5] then redis.call('DEL', KEYS[4]) end
local token = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[2], 'token', string.format('%.0f', token), 'holder', ARGV[2], 'held', ARGV[6])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return token
