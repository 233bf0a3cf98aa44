-- The ranking half of write_scores.lua on a Redis Cluster (the Top-K sorted set lives
-- in the global slot, the users in their partitions' slots): for the scores that
-- write_scores.lua stored, in the same order.
-- KEYS[1] rank zset (risk)
-- ARGV    per user i, 3 values from 3(i-1)+1: user id, risk, '1' if churned (leaves it)
-- returns per user 2 values: 0-based rank (-1: none), ranked users
local rank, out = KEYS[1], {}
for i = 1, #ARGV / 3 do
  local id, a = ARGV[3 * i - 2], 3 * (i - 1)
  if ARGV[a + 3] == '1' then
    redis.call('ZREM', rank, id)
    out[2 * i - 1], out[2 * i] = -1, redis.call('ZCARD', rank)
  else
    redis.call('ZADD', rank, ARGV[a + 2], id)
    out[2 * i - 1], out[2 * i] = redis.call('ZREVRANK', rank, id), redis.call('ZCARD', rank)
  end
end
return out
