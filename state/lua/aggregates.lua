-- Shared by apply_event.lua and aggregates_at.lua (prepended when the scripts load).
local DAY = 86400000

local function bit(flags, b) return math.floor(flags / b) % 2 == 1 end

-- a day record: n, purchases, carts, priced, spend, price mean, price M2, switches, next pos
local function unpack_day(v)
  local flags, n, pos = struct.unpack('<BI', v)
  local np, nc, pn, spend, pmean, pm2, sw = 0, 0, 0, 0.0, 0.0, 0.0, 0
  if bit(flags, 1) then np, spend, pos = struct.unpack('<Id', v, pos) end
  if bit(flags, 2) then nc, pos = struct.unpack('<I', v, pos) end
  if bit(flags, 4) then pn, pmean, pm2, pos = struct.unpack('<Idd', v, pos) end
  if bit(flags, 8) then sw, pos = struct.unpack('<I', v, pos) end
  return n, np, nc, pn, spend, pmean, pm2, sw, pos
end

local function day_of_field(f)
  if #f == 3 and string.byte(f, 1) == 100 then return struct.unpack('<H', f, 2) end
  return nil
end

-- field 'v' (customer value, see apply_event.lua): base day, purchase days, purchase days
-- with known spend, their spend, and the first purchase day (the lowest set bit; -1: none)
local function value_of(v)
  local base, npd, vn, vs = struct.unpack('<iIId', v)
  local k = string.find(v, '[^%z]', 21)
  if not k then return base, npd, vn, vs, -1 end
  local byte, b = string.byte(v, k), 0
  while byte % 2 == 0 do
    byte = byte / 2
    b = b + 1
  end
  return base, npd, vn, vs, base + 8 * (k - 21) + b
end

-- the long-range sums of field 'v' at day `today` (core/long_range.py): purchase days in
-- the 90/180/365 days ending with today, the last purchase day and the sum of squared gaps
-- between consecutive purchase days (integers, exact in doubles). Walks the set bits only:
-- zero bytes are skipped with one string.find.
local function purchase_walk(v, today)
  local base = struct.unpack('<i', v)
  local p90, p180, p365, prev, sq = 0, 0, 0, -1, 0
  local k = string.find(v, '[^%z]', 21)
  while k do
    local byte, d = string.byte(v, k), base + 8 * (k - 21)
    while byte > 0 do
      if byte % 2 == 1 then
        local age = today - d
        if age < 365 then
          p365 = p365 + 1
          if age < 180 then
            p180 = p180 + 1
            if age < 90 then p90 = p90 + 1 end
          end
        end
        if prev >= 0 then sq = sq + (d - prev) * (d - prev) end
        prev = d
      end
      byte = math.floor(byte / 2)
      d = d + 1
    end
    k = string.find(v, '[^%z]', k + 1)
  end
  return p90, p180, p365, prev, sq
end

-- now (default): the user's newest event, or the time of the stored score ('s', as_of at
-- byte 9) when a sweep has already scored the user later: a score never moves back.
-- Sums over the 7/15/30-day windows ending on day(now): the same
-- float operations in the same (ascending day) order as core.features.window_aggregates.
-- Every stored day is inside that window (older days are pruned when the newest day moves).
local function aggregates(key, now)
  local h = redis.call('HGETALL', key)
  local days, vals, meta, score, value = {}, {}, nil, nil, nil
  for i = 1, #h, 2 do
    local f = h[i]
    local dd = day_of_field(f)
    if dd then
      days[#days + 1] = dd
      vals[dd] = h[i + 1]
    elseif f == 'm' then
      meta = h[i + 1]
    elseif f == 's' then
      score = h[i + 1]
    elseif f == 'v' then
      value = h[i + 1]
    end
  end
  table.sort(days)
  if not meta then return false end
  local first, last, lastp = struct.unpack('<ddd', meta)
  if not now then
    now = last
    if score then now = math.max(now, struct.unpack('<d', score, 9)) end
  end
  local today = math.floor(now / DAY)
  local n7, n15, n30, np, nc, sw, pn = 0, 0, 0, 0, 0, 0, 0
  local spend, pmean, pm2 = 0.0, 0.0, 0.0
  local brands, btot, bmax, active = {}, 0, 0, {}
  local npd, fpd, vn, vs = 0, -1, 0, 0.0
  local p90, p180, p365, lpd, gsq = 0, 0, 0, -1, 0
  if value then
    local _
    _, npd, vn, vs, fpd = value_of(value)
    p90, p180, p365, lpd, gsq = purchase_walk(value, today)
  end
  for _, dd in ipairs(days) do
    if dd >= today - 29 and dd <= today then
      local v = vals[dd]
      local n, p, c, bpn, bspend, bmean, bm2, bsw, i = unpack_day(v)
      if n > 0 then
        active[#active + 1] = struct.pack('<H', dd)
        n30 = n30 + n
        if dd >= today - 14 then
          n15 = n15 + n
          if dd >= today - 6 then n7 = n7 + n end
        end
        np = np + p
        nc = nc + c
        spend = spend + bspend
        sw = sw + bsw
        if bpn > 0 then
          local tot = pn + bpn
          local delta = bmean - pmean
          pmean = pmean + delta * bpn / tot
          pm2 = pm2 + bm2 + delta * delta * pn * bpn / tot
          pn = tot
        end
        while i <= #v do
          local cnt, len = struct.unpack('<IH', v, i)
          local name = string.sub(v, i + 6, i + 5 + len)
          local total = (brands[name] or 0) + cnt
          brands[name] = total
          btot = btot + cnt
          if total > bmax then bmax = total end
          i = i + 6 + len
        end
      end
    end
  end
  return struct.pack('<IIIIIIIIIdddddddIiIdIIIid', n7, n15, n30, np, nc, sw, pn, btot, bmax,
                     spend, pmean, pm2, first, last, lastp, now, npd, fpd, vn, vs, p90, p180,
                     p365, lpd, gsq)
         .. table.concat(active)
end

