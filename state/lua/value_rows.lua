-- (aggregates.lua and value_summary.lua are prepended: value_of, DAY, summarize)
-- The value summaries of the user hashes KEYS (one partition's users) on one day: what an
-- event-time value fit sees of them at an anchor. Read-only.
-- ARGV[1] RFM frequency window in days (0 = lifetime)   ARGV[2] the UTC day number
-- returns {records, users without a purchase, key, key, ...}
local recs, ids, prospects = summarize(KEYS, tonumber(ARGV[1]), {}, tonumber(ARGV[2]))
local out = {recs, prospects}
for _, k in ipairs(ids) do out[#out + 1] = k end
return out
