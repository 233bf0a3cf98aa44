-- The monthly figures (core/monthly.py, the reference: the same arithmetic).
-- User hash field 'mo' = '<hhH' cohort month, newest active month, mask (bit j: active
-- in month newest - j); months count from 1970-01. Counters in the months hash:
-- 'a:<m>' active, 'r:<m>' retained (active in m - 1 and m), 'c:<m>:<k>' cohort m
-- active in month m + k (k < 12).
local MASK_MONTHS, COHORT_MONTHS = 16, 12
local function has(mask, j) return math.floor(mask / 2 ^ j) % 2 == 1 end

local function month_of_day(day)  -- H. Hinnant's civil_from_days
  local z = day + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local month = mp < 10 and mp + 3 or mp - 9
  local year = yoe + era * 400 + (month <= 2 and 1 or 0)
  return (year - 1970) * 12 + month - 1
end

-- mark the user active in `month`; returns the new 'mo' value, or nil when unchanged
local function mark_month(months_key, mo, month)
  local function inc(f, n) redis.call('HINCRBY', months_key, f, n) end
  if not mo then
    inc('a:' .. month, 1)
    inc('c:' .. month .. ':0', 1)
    return struct.pack('<hhH', month, month, 1)
  end
  local first, newest, mask = struct.unpack('<hhH', mo)
  if month == newest then return mo end  -- the newest month is always marked (bit 0)
  if month > newest then
    local shift = month - newest
    if shift < MASK_MONTHS then mask = (mask * 2 ^ shift) % 65536 else mask = 0 end
    newest = month
  end
  local j = newest - month
  if j >= MASK_MONTHS - 1 or has(mask, j) then  -- too old: see core/monthly.mark
    return struct.pack('<hhH', first, newest, mask)
  end
  mask = mask + 2 ^ j
  inc('a:' .. month, 1)
  if has(mask, j + 1) then
    inc('r:' .. month, 1)
  end
  if j >= 1 and has(mask, j - 1) then inc('r:' .. (month + 1), 1) end
  if month < first then  -- a late event before the cohort month: the cohort moves
    for i = 0, MASK_MONTHS - 1 do
      if i ~= j and has(mask, i) then
        local m = newest - i
        if m - first < COHORT_MONTHS then inc('c:' .. first .. ':' .. (m - first), -1) end
        if m - month < COHORT_MONTHS then inc('c:' .. month .. ':' .. (m - month), 1) end
      end
    end
    first = month
  end
  if month - first < COHORT_MONTHS then inc('c:' .. first .. ':' .. (month - first), 1) end
  return struct.pack('<hhH', first, newest, mask)
end
