-- Token bucket: refill by elapsed server time, then take n tokens or none.
-- KEYS[1] bucket hash: tokens (float), at (server time in ms of the last refill)
-- ARGV[1] refill rate per second (> 0), ARGV[2] burst / capacity (integer >= 1),
-- ARGV[3] n, tokens to take (integer, 1..burst)
-- Returns {1, 0, remaining} when taken, {0, retryAfterMs, remaining} when refused;
-- remaining is whole tokens left.
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
-- Server time, so every node refills the bucket by the same clock.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
local ok, retry = 0, 0
if tokens >= n then
  tokens = tokens - n
  ok = 1
else
  retry = math.ceil((n - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'at', string.format('%.3f', now))
-- Once it would be full again the bucket equals a missing one, so let Redis drop it.
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000)
return {ok, retry, math.floor(tokens)}
