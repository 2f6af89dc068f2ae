-- Free a lock, only for the current holder (compare-and-delete).
-- KEYS[1] lock key
-- ARGV[1] holder's fencing token
-- Returns 1 when released, 0 when the token is not the current holder.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
