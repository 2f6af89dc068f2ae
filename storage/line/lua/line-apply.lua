-- Mirror the line's pause state from Postgres, and report the holder atomically with it.
-- KEYS[1] control hash {epoch, ready, paused, reason, pausedAt, pausedBy}. Its epoch is the
--         Postgres epoch of the state it holds; ready = 1 once a resync has confirmed it.
--         Missing means Redis lost it (or never had it): acquire refuses until resynced.
-- KEYS[2] lease hash, KEYS[3] fencing-token counter (as in line-acquire.lua)
-- ARGV[1] epoch of this state (Postgres), ARGV[2] paused '1' | '0', ARGV[3] reason,
-- ARGV[4] pausedAt (epoch ms), ARGV[5] pausedBy ('' for none in all three),
-- ARGV[6] quarantine ms: when (re)establishing, keep the line busy this long unless a lease is
--         held (one lost with Redis's data may still have a request in flight)
-- ARGV[7] the epoch of the first resync that recorded the line as mirrored in Postgres, after
--         which it may confirm and Redis hand out leases (0: never, so no lease to lose)
-- An older epoch than the one held changes nothing. A missing or unconfirmed control hash is
-- (re)established unconfirmed, with the token counter raised to epoch * 1e9, so tokens never
-- repeat after Redis loses its data (epochs are durable and only grow).
-- The quarantine is laid when the hash is missing, or unconfirmed from an epoch older than
-- ARGV[7]: such a hash may have been made, without one, from a read of the line before it was
-- ever mirrored, after Redis lost a lease. Epochs are never handed out twice (a sequence, even
-- across rollbacks), so a hash from ARGV[7] was made by that first resync, before it recorded
-- the line as mirrored and so before any lease, and one from a later epoch by a process that
-- read the line as mirrored, which quarantined it if it had to. Quarantining those again would
-- keep a new line busy when two processes set it up at once.
-- Returns {ready 1|0, paused '1'|'0', reason, pausedAt, pausedBy, holder JSON} after applying,
-- '' for absent values.
local epoch = tonumber(ARGV[1])
local held = redis.call('HMGET', KEYS[1], 'epoch', 'ready')
local current = tonumber(held[1])
local ready = held[2] == '1'
if current == nil or current <= epoch then
  if not ready then
    local mirrored = tonumber(ARGV[7])
    local quarantine = tonumber(ARGV[6])
    if mirrored == 0 or (current ~= nil and current >= mirrored) then quarantine = 0 end
    if quarantine > 0 and redis.call('EXISTS', KEYS[2]) == 0 then
      -- Token 0 never matches a release; no holder, so state reports nothing in flight.
      redis.call('HSET', KEYS[2], 'token', '0', 'holder', '')
      redis.call('PEXPIRE', KEYS[2], quarantine)
    end
    local floor = epoch * 1000000000
    if tonumber(redis.call('GET', KEYS[3]) or '0') < floor then
      redis.call('SET', KEYS[3], string.format('%.0f', floor))
    end
  end
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'ready', ready and '1' or '0', 'paused', ARGV[2],
    'reason', ARGV[3], 'pausedAt', ARGV[4], 'pausedBy', ARGV[5])
end
local s = redis.call('HMGET', KEYS[1], 'ready', 'paused', 'reason', 'pausedAt', 'pausedBy')
return {s[1] == '1' and 1 or 0, s[2] or '', s[3] or '', s[4] or '', s[5] or '', redis.call('HGET', KEYS[2], 'holder') or ''}
