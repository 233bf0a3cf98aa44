-- Apply one validated event to one user's hash, atomically (see core/apply.py for
-- the reference semantics; the float operations here are the same, in the same order).
-- KEYS[1]  stats hash (counters by status and event type)     KEYS[2] user hash {u:<id>}
-- KEYS[3]  months hash (the monthly figures, months.lua)
-- ARGV[1]  horizon_days
-- ARGV[2]  packed '<c8dddBBd': fingerprint(8 bytes) time_ms partition offset
--          type(0 other, 1 cart, 2 purchase) want_state(0/1) price(NaN = none)
-- ARGV[3]  brand ('' = none)    ARGV[4] event type name
-- returns  {status} or, when want_state = 1, {status, window aggregates at the newest event}
--          packed '<IIIIIIIIIdddddd' + uint16 per active day (see state/codec.py)
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
local key = KEYS[2]
local horizon = tonumber(ARGV[1])
local fp, t, part, off, typ, want_flag, price = struct.unpack('<c8dddBBd', ARGV[2])
local brand, want = ARGV[3], want_flag == 1
if price ~= price then price = nil end

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

local day = math.floor(t / DAY)
local NAMES = {[0] = 'applied', [1] = 'late', [2] = 'late_outside', [3] = 'duplicate'}

local function reply(status)
  if status ~= 4 then
    redis.call('HINCRBY', KEYS[1], NAMES[status], 1)
    if status ~= 3 then redis.call('HINCRBY', KEYS[1], 'type:' .. ARGV[4], 1) end
  end
  if want then return {status, aggregates(key)} end
  return {status}
end

local dkey = 'd' .. struct.pack('<H', day)
local cur = redis.call('HMGET', key, 'o', 'm', 'x', 'lb', dkey, 'v', 'mo')
local o, m, x, lb, d, v, old_mo = cur[1], cur[2], cur[3], cur[4], cur[5], cur[6], cur[7]
if o then
  local p0, o0 = struct.unpack('<Hd', o)
  if p0 == part and off <= o0 then return reply(4) end
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
          return reply(3)
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
  if v then f[#f + 1] = 'v'; f[#f + 1] = v end
  redis.call('HSET', key, unpack(f))
  return reply(2)
end

x = (x or '') .. struct.pack('<H', day) .. fp
local n, np, nc, pn, spend, pmean, pm2, sw = 0, 0, 0, 0, 0.0, 0.0, 0.0, 0
local bs = ''
local mo
if not d then  -- the user's first counted event of the day: their month may be new
  mo = mark_month(KEYS[3], old_mo, month_of_day(day))
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
if v then
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
if late then return reply(1) end
return reply(0)
