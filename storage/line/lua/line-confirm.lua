-- Mark the control hash ready after a resync, if it still holds the state of that epoch.
-- KEYS[1] control hash (see line-apply.lua)
-- ARGV[1] epoch the resync applied (and found still current in Postgres afterwards)
-- Returns 1 when confirmed, 0 when a newer state arrived meanwhile (resync again).
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'ready', '1')
return 1
