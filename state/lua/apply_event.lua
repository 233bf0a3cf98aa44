-- Apply a batch of validated events, each to its user's hash, in order (see
-- core/apply.py for the reference semantics; the float operations here are the same,
-- in the same order). One call per batch (per partition on a Redis Cluster): a script
-- call costs more than most events' work.
-- KEYS[1]  stats hash (counters by status and event type)
-- KEYS[2]  months hash (the monthly figures, months.lua)
-- KEYS[2 + i]  the user hash of event i
-- ARGV[1]  horizon_days; then per event i, from ARGV[3i - 1]:
--          packed '<c8dddBBd': fingerprint(8 bytes) time_ms partition offset
--          type(0 other, 1 cart, 2 purchase) want_state(0/1) price(NaN = none);
--          brand ('' = none); event type name
-- returns  {statuses, aggregates...}: one byte per event, its status; then, for each
--          event with want_state = 1 in order, the window aggregates at the newest event
--          packed '<IIIIIIIIIdddddd' + uint16 per active day (see state/codec.py), '' if
--          none. Flat: a reply of a table per event costs Redis ~7 us per event.
--          The stats counters are summed here and written once per call.
-- status   0 applied, 1 late, 2 late_outside, 3 duplicate, 4 redelivered
--
-- User hash fields (state/codec.py decodes them):
--   m   '<ddd' first, newest, last purchase time (ms; -1 = none)
--   o   '<Hd' partition, offset of the last applied record
--   lb  brand of the last branded event in arrival order
--   mo  '<hhH' the monthly marks (months.lua)
--   x   dedupe records, 10 bytes each: '<H' day + 8-byte fingerprint
--   v   customer value (only once the user has purchased): '<iIId' base day, purchase
--       days, purchase days with known spend, their spend; then a bitmap of purchase
--       days, bit i of byte k (LSB first) = day base + 8k + i.
--   'd' .. '<H' day   one UTC day: '<BI' flags, events; then only the parts whose flag is
--       set: 1 '<Id' purchases, spend; 2 '<I' carts; 4 '<Idd' priced events, price mean,
--       price M2; 8 '<I' brand switches; then that day's brand counts as repeated
--       ('<IH' count, length, brand bytes). Absent parts are zero.
-- Fields are read with one HMGET and written with one HSET (each call costs more than
-- the arithmetic around it).
local horizon = tonumber(ARGV[1])
local stats, months = KEYS[1], KEYS[2]

local function pack_day(n, np, nc, pn, spend, pmean, pm2, sw)
  local flags, parts = 0, {}
  if np > 0 then flags = flags + 1; parts[#parts + 1] = struct.pack('<Id', np, spend) end
  if nc > 0 then flags = flags + 2; parts[#parts + 1] = struct.pack('<I', nc) end
  if pn > 0 then flags = flags + 4; parts[#parts + 1] = struct.pack('<Idd', pn, pmean, pm2) end
  if sw > 0 then flags = flags + 8; parts[#parts + 1] = struct.pack('<I', sw) end
  return struct.pack('<BI', flags, n) .. table.concat(parts)
end
-- set the bit of a purchase day (growing the bitmap at either end), counting new days
local function mark_purchase_day(val, pday)
  local base, npd, vn, vs, bits
  if val then
    base, npd, vn, vs = struct.unpack('<iIId', val)
    bits = string.sub(val, 21)
  else
    base, npd, vn, vs, bits = pday - pday % 8, 0, 0, 0.0, ''
  end
  if pday < base then
    local nb = math.ceil((base - pday) / 8)
    bits = string.rep('\0', nb) .. bits
    base = base - 8 * nb
  end
  local idx = pday - base
  local k, mask = math.floor(idx / 8) + 1, 2 ^ (idx % 8)
  if k > #bits then bits = bits .. string.rep('\0', k - #bits) end
  local byte = string.byte(bits, k)
  if math.floor(byte / mask) % 2 == 0 then
    npd = npd + 1
    bits = string.sub(bits, 1, k - 1) .. string.char(byte + mask) .. string.sub(bits, k + 1)
  end
  return struct.pack('<iIId', base, npd, vn, vs) .. bits
end

local NAMES = {[0] = 'applied', [1] = 'late', [2] = 'late_outside', [3] = 'duplicate'}

local counts, types, aggs = {}, {}, {}

local function reply(key, want, tname, status)
  if status ~= 4 then
    local name = NAMES[status]
    counts[name] = (counts[name] or 0) + 1
    if status ~= 3 then types[tname] = (types[tname] or 0) + 1 end
  end
  if want then aggs[#aggs + 1] = aggregates(key) or '' end
  return status
end

local function apply_one(key, packed, brand, tname)
  local fp, t, part, off, typ, want_flag, price = struct.unpack('<c8dddBBd', packed)
  local want = want_flag == 1
  if price ~= price then price = nil end
  local day = math.floor(t / DAY)
  local dkey = 'd' .. struct.pack('<H', day)
  local cur = redis.call('HMGET', key, 'o', 'm', 'x', 'lb', dkey, 'v', 'mo')
  local o, m, x, lb, d, v, old_mo = cur[1], cur[2], cur[3], cur[4], cur[5], cur[6], cur[7]
  if o then
    local p0, o0 = struct.unpack('<Hd', o)
    if p0 == part and off <= o0 then return reply(key, want, tname, 4) end
  end
  local opos = struct.pack('<Hd', part, off)

  local first, last, lastp
  if m then
    first, last, lastp = struct.unpack('<ddd', m)
    local old_min_day = math.floor(last / DAY) - horizon + 1
    if x then
      local init = 1
      while true do
        local pos = string.find(x, fp, init, true)
        if not pos then break end
        if (pos - 3) % 10 == 0 then
          local seen_day = struct.unpack('<H', x, pos - 2)
          if seen_day >= old_min_day then
            redis.call('HSET', key, 'o', opos)
            return reply(key, want, tname, 3)
          end
        end
        init = pos + 1
      end
    end
  else
    first, last, lastp = t, t, -1
  end

  local late = t < last
  local old_last_day = math.floor(last / DAY)
  local new_last = math.max(last, t)
  local new_last_day = math.floor(new_last / DAY)
  local min_day = new_last_day - horizon + 1
  if new_last_day > old_last_day then
    local stale = {}
    for _, f in ipairs(redis.call('HKEYS', key)) do
      local dd = day_of_field(f)
      if dd and dd < min_day then stale[#stale + 1] = f end
    end
    if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
    if x then
      local keep = {}
      for i = 1, #x, 10 do
        if struct.unpack('<H', x, i) >= min_day then keep[#keep + 1] = string.sub(x, i, i + 9) end
      end
      x = table.concat(keep)
    end
  end
  if t < first then first = t end
  last = new_last
  if typ == 2 then
    if t > lastp then lastp = t end
    v = mark_purchase_day(v, day)
  end
  local meta = struct.pack('<ddd', first, last, lastp)
  if day < min_day then
    local f = {'m', meta, 'o', opos}
    if x then f[#f + 1] = 'x'; f[#f + 1] = x end
    if typ == 2 then f[#f + 1] = 'v'; f[#f + 1] = v end  -- (only a purchase changes it)
    redis.call('HSET', key, unpack(f))
    return reply(key, want, tname, 2)
  end

  x = (x or '') .. struct.pack('<H', day) .. fp
  local n, np, nc, pn, spend, pmean, pm2, sw = 0, 0, 0, 0, 0.0, 0.0, 0.0, 0
  local bs = ''
  local mo
  if not d then  -- the user's first counted event of the day: their month may be new
    mo = mark_month(months, old_mo, month_of_day(day))
    if mo == old_mo then mo = nil end
  end
  if d then
    local pos
    n, np, nc, pn, spend, pmean, pm2, sw, pos = unpack_day(d)
    bs = string.sub(d, pos)
  end
  n = n + 1
  if typ == 2 then
    local base, npd, vn, vs = struct.unpack('<iIId', v)
    if np == 0 then vn = vn + 1 end
    if price then vs = vs + price end
    v = struct.pack('<iIId', base, npd, vn, vs) .. string.sub(v, 21)
    np = np + 1
    if price then spend = spend + price end
  elseif typ == 1 then
    nc = nc + 1
  end
  if price then
    pn = pn + 1
    local delta = price - pmean
    pmean = pmean + delta / pn
    pm2 = pm2 + delta * (price - pmean)
  end
  local fields = {'m', meta, 'o', opos, 'x', x}
  if mo then
    fields[#fields + 1] = 'mo'
    fields[#fields + 1] = mo
  end
  if typ == 2 then  -- (only a purchase changes it)
    fields[#fields + 1] = 'v'
    fields[#fields + 1] = v
  end
  if brand ~= '' then
    if lb and lb ~= brand then sw = sw + 1 end
    local i, found = 1, false
    while i <= #bs do
      local cnt, len = struct.unpack('<IH', bs, i)
      if string.sub(bs, i + 6, i + 5 + len) == brand then
        bs = string.sub(bs, 1, i - 1) .. struct.pack('<I', cnt + 1) .. string.sub(bs, i + 4)
        found = true
        break
      end
      i = i + 6 + len
    end
    if not found then bs = bs .. struct.pack('<IH', 1, #brand) .. brand end
    if lb ~= brand then
      fields[#fields + 1] = 'lb'
      fields[#fields + 1] = brand
    end
  end
  fields[#fields + 1] = dkey
  fields[#fields + 1] = pack_day(n, np, nc, pn, spend, pmean, pm2, sw) .. bs
  redis.call('HSET', key, unpack(fields))
  if late then return reply(key, want, tname, 1) end
  return reply(key, want, tname, 0)
end

local statuses = {}
for i = 1, (#ARGV - 1) / 3 do
  statuses[i] = string.char(apply_one(KEYS[2 + i], ARGV[3 * i - 1], ARGV[3 * i], ARGV[3 * i + 1]))
end
for name, n in pairs(counts) do redis.call('HINCRBY', stats, name, n) end
for name, n in pairs(types) do redis.call('HINCRBY', stats, 'type:' .. name, n) end
table.insert(aggs, 1, table.concat(statuses))
return aggs
