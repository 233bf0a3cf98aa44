-- Store one user's score unless a newer one is stored (a sweep at anchor A must not
-- overwrite the score of an event after A), and keep the Top-K index and the
-- partition's index of active users (member -> newest event ms) current.
-- KEYS[1] user hash   KEYS[2] rank zset (risk)   KEYS[3] active zset of the partition
-- ARGV[1] score blob ('<dd...' risk, as_of)   ARGV[2] risk   ARGV[3] user id
-- ARGV[4] the user's newest event (ms)   ARGV[5] '1': silent > H at as_of (churned: the
--         user leaves both indexes instead)
-- returns {written 0/1, 0-based rank (-1 if not written), ranked users, tier record|false}
local s = redis.call('HGET', KEYS[1], 's')
local as_of = struct.unpack('<d', ARGV[1], 9)
local t = redis.call('HGET', KEYS[1], 't') or false
if s and struct.unpack('<d', s, 9) > as_of then return {0, -1, 0, t} end
redis.call('HSET', KEYS[1], 's', ARGV[1])
if ARGV[5] == '1' then
  redis.call('ZREM', KEYS[2], ARGV[3])
  redis.call('ZREM', KEYS[3], ARGV[3])
  return {1, -1, redis.call('ZCARD', KEYS[2]), t}
end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3])
return {1, redis.call('ZREVRANK', KEYS[2], ARGV[3]), redis.call('ZCARD', KEYS[2]), t}
