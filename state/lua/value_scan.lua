-- (aggregates.lua and value_summary.lua are prepended: value_of, DAY, summarize)
-- One step of a SCAN over the user hashes: the value summary of each customer, each on
-- its partition's watermark day. Read-only.
-- ARGV[1] cursor   ARGV[2] MATCH pattern   ARGV[3] COUNT
-- ARGV[4] RFM frequency window in days (0 = lifetime)
-- ARGV[5..] today (UTC day number of the event-time watermark) of partition 0, 1, ...
-- returns {next cursor, records, users without a purchase, key, key, ...}
local res = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3])
local today_of, maxday = {}, 0
for i = 5, #ARGV do
  today_of[i - 5] = tonumber(ARGV[i])
  if today_of[i - 5] > maxday then maxday = today_of[i - 5] end
end
local recs, ids, prospects = summarize(res[2], tonumber(ARGV[4]), today_of, maxday)
local out = {res[1], recs, prospects}
for _, k in ipairs(ids) do out[#out + 1] = k end
return out
