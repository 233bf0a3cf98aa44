-- Apply one validated event to one user's hash, atomically (see core/apply.py for
-- the reference semantics; the float operations here are the same, in the same order).
-- KEYS[1]  user hash {u:<id>}     KEYS[2] stats hash (counters by status and event type)
-- ARGV     fp(8 bytes) time_ms day type(0 other,1 cart,2 purchase) price('' = none)
--          brand('' = none) partition offset horizon_days want_state(0/1) type_name
-- returns  {status} or {status, field1, value1, ...} when want_state = 1
-- status   0 applied, 1 late, 2 late_outside, 3 duplicate, 4 redelivered
local key = KEYS[1]
local fp, t, day, typ = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local price_s, brand = ARGV[5], ARGV[6]
local part, off = tonumber(ARGV[7]), tonumber(ARGV[8])
local horizon, want = tonumber(ARGV[9]), ARGV[10] == '1'
local DAY = 86400000

local NAMES = {[0] = 'applied', [1] = 'late', [2] = 'late_outside', [3] = 'duplicate'}

local function reply(status)
  if status ~= 4 then
    redis.call('HINCRBY', KEYS[2], NAMES[status], 1)
    if status ~= 3 then redis.call('HINCRBY', KEYS[2], 'type:' .. ARGV[11], 1) end
  end
  if want then
    local out = redis.call('HGETALL', key)
    table.insert(out, 1, status)
    return out
  end
  return {status}
end

local o = redis.call('HGET', key, 'o')
if o then
  local p0, o0 = struct.unpack('<dd', o)
  if p0 == part and off <= o0 then return reply(4) end
end
local opos = struct.pack('<dd', part, off)

local m = redis.call('HGET', key, 'm')
local first, last, lastp
if m then
  first, last, lastp = struct.unpack('<ddd', m)
  local old_min_day = math.floor(last / DAY) - horizon + 1
  local x = redis.call('HGET', key, 'x')
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
  local fields = redis.call('HKEYS', key)
  for _, f in ipairs(fields) do
    local c = string.sub(f, 1, 1)
    if (c == 'd' or c == 'b') and tonumber(string.sub(f, 2)) < min_day then
      redis.call('HDEL', key, f)
    end
  end
  local x = redis.call('HGET', key, 'x')
  if x then
    local keep = {}
    for i = 1, #x, 10 do
      if struct.unpack('<H', x, i) >= min_day then keep[#keep + 1] = string.sub(x, i, i + 9) end
    end
    redis.call('HSET', key, 'x', table.concat(keep))
  end
end
if t < first then first = t end
last = new_last
if typ == 2 and t > lastp then lastp = t end
redis.call('HSET', key, 'm', struct.pack('<ddd', first, last, lastp), 'o', opos)
if day < min_day then return reply(2) end

redis.call('HSET', key, 'x', (redis.call('HGET', key, 'x') or '') .. struct.pack('<H', day) .. fp)
local dkey = 'd' .. day
local n, np, nc, pn, spend, pmean, pm2, sw = 0, 0, 0, 0, 0.0, 0.0, 0.0, 0
local d = redis.call('HGET', key, dkey)
if d then n, np, nc, pn, spend, pmean, pm2, sw = struct.unpack('<IIIIdddI', d) end
n = n + 1
local price = tonumber(price_s)
if typ == 2 then
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
if brand ~= '' then
  local lb = redis.call('HGET', key, 'lb')
  if lb and lb ~= brand then sw = sw + 1 end
  if lb ~= brand then redis.call('HSET', key, 'lb', brand) end
  -- brand counts of the day: repeated (count uint32, length uint16, bytes)
  local bkey = 'b' .. day
  local bs = redis.call('HGET', key, bkey) or ''
  local i, found = 1, false
  while i <= #bs do
    local cnt, len = struct.unpack('<IH', bs, i)
    local name = string.sub(bs, i + 6, i + 5 + len)
    if name == brand then
      bs = string.sub(bs, 1, i - 1) .. struct.pack('<I', cnt + 1) .. string.sub(bs, i + 4)
      found = true
      break
    end
    i = i + 6 + len
  end
  if not found then bs = bs .. struct.pack('<IH', 1, #brand) .. brand end
  redis.call('HSET', key, bkey, bs)
end
redis.call('HSET', key, dkey, struct.pack('<IIIIdddI', n, np, nc, pn, spend, pmean, pm2, sw))
if late then return reply(1) end
return reply(0)
