-- Window aggregates of several users at one reference time (sweeps and anchors).
-- KEYS    user hashes
-- ARGV[1] now (ms; not before any of these users' newest event)
-- returns one packed aggregates blob per key (see state/codec.py), false if no state
local now = tonumber(ARGV[1])
local out = {}
for i, k in ipairs(KEYS) do out[i] = aggregates(k, now) end
return out
