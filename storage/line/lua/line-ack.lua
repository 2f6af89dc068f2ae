-- A holder that keeps its lease for several requests (held) answers a pause: it has stopped
-- starting requests, and names the one still in flight under its lease, if any.
-- KEYS[1] lease hash (see line-acquire.lua)
-- ARGV[1] the holder's token, ARGV[2] the request in flight (holder JSON) or '' for none
-- Returns 1 when recorded, 0 when the token no longer holds the lease (expired or let go).
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'holder', ARGV[2], 'stopped', '1')
return 1
