-- (state/lua/aggregates.lua is prepended: value_of, DAY)
-- summarize(keys, W, today_of, maxday): the value summary of each customer among the user
-- hashes ``keys`` (a user with at least one purchase day; field 'v', see apply_event.lua).
-- W: RFM frequency window in days (0 = lifetime); today_of[partition]: the UTC day the
-- summary is taken on (the partition's watermark day, or an anchor's day); maxday for a
-- user whose partition is not known. Read-only. Returns the packed '<iiiIdii' records
-- (x, t_x, T, purchase days with known spend, their spend, days since the last purchase
-- day, purchase days in the frequency window), the customers' keys and the number of
-- users without a purchase.
local POP = {}
for i = 0, 255 do
  local c, b = 0, i
  while b > 0 do
    c = c + b % 2
    b = math.floor(b / 2)
  end
  POP[i] = c
end

local function summarize(keys, W, today_of, maxday)
  local recs, ids, prospects = {}, {}, 0
  for _, k in ipairs(keys) do
    local h = redis.call('HMGET', k, 'v', 'm', 'o')
    local v = h[1]
    if v and h[2] then
      local base, npd, vn, vs, first = value_of(v)
      local _, _, lastp = struct.unpack('<ddd', h[2])
      local lastd = math.floor(lastp / DAY)
      local today = maxday
      if h[3] then today = today_of[struct.unpack('<H', h[3])] or maxday end
      if today < lastd then today = lastd end
      if first < 0 then first = lastd end
      local f = npd
      if W > 0 then
        local lo = today - W + 1
        f = 0
        for j = 21, #v do
          local d0 = base + 8 * (j - 21)
          local byte = string.byte(v, j)
          if d0 >= lo then
            f = f + POP[byte]
          elseif d0 + 7 >= lo then
            for bit_i = 0, 7 do
              if d0 + bit_i >= lo and math.floor(byte / 2 ^ bit_i) % 2 == 1 then f = f + 1 end
            end
          end
        end
      end
      recs[#recs + 1] = struct.pack('<iiiIdii', npd - 1, lastd - first, today - first, vn, vs,
                                    today - lastd, f)
      ids[#ids + 1] = k
    elseif h[2] then
      prospects = prospects + 1
    end
  end
  return table.concat(recs), ids, prospects
end
