-- Count one batch of one partition, once. Runs in the same MULTI/EXEC as the
-- batch's apply_event calls, so counters, watermark and applied offset move together.
-- KEYS[1] churn:offsets (partition -> last applied offset)
-- KEYS[2] churn:stats   (counter -> value)
-- KEYS[3] churn:watermark (partition -> its clock: largest confirmed event time, ms)
-- KEYS[4] churn:unconfirmed (partition -> records ahead of the clock, JSON; core/clock.py)
-- ARGV    partition last_offset watermark_ms unconfirmed expected name1 inc1 ...
--         (unconfirmed "-": unchanged; expected: the applied offset the batch was
--         computed against, -2 = unchecked)
-- returns 1 if counted, 0 if this offset range was already counted, -1 if another
--         worker has committed beyond ``expected`` meanwhile (nothing done)
local part, last_off, wm = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local prev = tonumber(redis.call('HGET', KEYS[1], part) or '-1')
local expected = tonumber(ARGV[5])
if expected ~= -2 and prev > expected then return -1 end
if last_off <= prev then return 0 end
redis.call('HSET', KEYS[1], part, ARGV[2])
for i = 6, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[2], ARGV[i], ARGV[i + 1])
end
if wm >= 0 then
  local old = tonumber(redis.call('HGET', KEYS[3], part) or '-1')
  if wm > old then redis.call('HSET', KEYS[3], part, ARGV[3]) end
end
if ARGV[4] ~= '-' then redis.call('HSET', KEYS[4], part, ARGV[4]) end
return 1
