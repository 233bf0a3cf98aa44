-- Store the scores of many users in one call, each unless a newer one is stored (a
-- sweep at anchor A must not overwrite the score of an event after A), and keep the
-- Top-K index and the partitions' indexes of active users (member -> newest event)
-- current.
-- KEYS[1] rank zset (risk); then per user i: KEYS[2i] user hash, KEYS[2i+1] active zset.
-- Without the rank zset (an even number of keys: on a Redis Cluster the ranking lives
-- in another slot), per user i KEYS[2i-1], KEYS[2i], and the ranking is left to
-- rank_scores.lua (rank -1, ranked 0 here).
-- ARGV    per user i, 5 values from 5(i-1)+1: score blob ('<dd...' risk, as_of),
--         risk, user id, newest event (ms), '1' if silent > H at as_of (churned: the
--         user leaves both indexes instead), '2' if the active index is current (sweeps)
-- returns per user 4 values: written 0/1, 0-based rank (-1: none), ranked users,
--         stored tier record or false
local ranked = #KEYS % 2 == 1
local rank, out, shift = KEYS[1], {}, ranked and 0 or -1
local card = ranked and redis.call('ZCARD', rank) or 0  -- kept by the ZADD/ZREM replies
for i = 1, math.floor(#KEYS / 2) do
  local user, active, a = KEYS[2 * i + shift], KEYS[2 * i + 1 + shift], 5 * (i - 1)
  local blob, id = ARGV[a + 1], ARGV[a + 3]
  local cur = redis.call('HMGET', user, 's', 't')
  local s, t = cur[1], cur[2]
  local o = #out
  if s and struct.unpack('<d', s, 9) > struct.unpack('<d', blob, 9) then
    out[o + 1], out[o + 2], out[o + 3], out[o + 4] = 0, -1, 0, t
  else
    redis.call('HSET', user, 's', blob)
    if ARGV[a + 5] == '1' then
      redis.call('ZREM', active, id)
      out[o + 1], out[o + 2], out[o + 3], out[o + 4] = 1, -1, 0, t
      if ranked then
        card = card - redis.call('ZREM', rank, id)
        out[o + 3] = card
      end
    else
      if ARGV[a + 5] == '0' then redis.call('ZADD', active, ARGV[a + 4], id) end
      out[o + 1], out[o + 2], out[o + 3], out[o + 4] = 1, -1, 0, t
      if ranked then
        card = card + redis.call('ZADD', rank, ARGV[a + 2], id)
        out[o + 2], out[o + 3] = redis.call('ZREVRANK', rank, id), card
      end
    end
  end
end
return out
