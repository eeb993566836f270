-- Applies a run of events, folded by the service into one change per record,
-- entity and lane set (src/features/batch.rs), all or nothing: if any of the
-- events' ids was seen before, nothing is written and the script answers which,
-- so the service folds the others again and retries.
--
-- Records are strings of 8-byte little-endian doubles in `field_names` order:
-- t, every counter x window (counter-major), gt, every gauge; a clock that was
-- never set is NaN. A change has the same layout (the record those events alone
-- would leave) and is merged as AggregateRecord::merge in
-- src/features/aggregates.rs does: keep the two in step (tests/redis_store.rs
-- checks that both backends give the same records).
--
-- KEYS: R record keys, N entity keys, L lane set keys, then S dedupe keys
-- ARGV: dedupe TTL in seconds (also the entities' TTL); W, the number of
--       windows, and their W time constants in seconds; R, N, L, S; per record
--       its counter field count (counters x W) and its change; per entity its
--       value — the version as a double, then the JSON — kept only if the
--       version is not older than the stored one; per lane set its carrier count
--       and the carriers
-- Returns the positions (1-based, among the dedupe keys) of ids already seen —
-- empty when everything was applied. Ids are marked only after everything else
-- is written, so a script that fails part way leaves them unmarked and a retry
-- applies the events instead of taking them for duplicates.
local ttl = ARGV[1]
local nwin = tonumber(ARGV[2])
local tau = {}
for w = 1, nwin do tau[w] = tonumber(ARGV[2 + w]) end
local a = 3 + nwin
local nrec, nent, nlane, nseen =
  tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
a = a + 4
local seen_from = nrec + nent + nlane

-- Were any of the ids seen before? One call for all; which ones only if so.
if nseen > 0 and redis.call('EXISTS', unpack(KEYS, seen_from + 1, seen_from + nseen)) > 0 then
  local seen = {}
  for s = 1, nseen do
    if redis.call('EXISTS', KEYS[seen_from + s]) == 1 then seen[#seen + 1] = s end
  end
  return seen
end

local formats = {}
local function format_of(n)
  local format = formats[n]
  if not format then
    format = '<' .. string.rep('d', n)
    formats[n] = format
  end
  return format
end

-- MGET of KEYS[from + 1 .. from + count], in slices Lua's stack can hold;
-- false for a key not there.
local function mget(from, count)
  local out = {}
  for first = 1, count, 1000 do
    local last = math.min(first + 999, count)
    local got = redis.call('MGET', unpack(KEYS, from + first, from + last))
    for i = 1, #got do out[first + i - 1] = got[i] end
  end
  return out
end

-- Records: merged in Lua, written with one MSET per thousand. A record not
-- stored yet (or of another layout) is simply the change.
local stored = mget(0, nrec)
local writes = {}
for r = 1, nrec do
  local cw = tonumber(ARGV[a])
  local change = ARGV[a + 1]
  a = a + 2
  local raw = stored[r]
  if raw and #raw == #change then
    local n = #change / 8
    local format = format_of(n)
    local d = {struct.unpack(format, change)}
    local v = {struct.unpack(format, raw)}
    local g = 2 + cw
    local at, last = d[1], v[1]
    if last ~= last then last = nil end -- NaN: a clock never set
    if cw > 0 and at == at then
      if last and at < last then
        for w = 1, nwin do
          local weight = math.exp(-(last - at) / tau[w])
          for i = 1 + w, 1 + cw, nwin do v[i] = v[i] + d[i] * weight end
        end
      else
        for w = 1, nwin do
          local decay = 0
          if last then decay = math.exp(-(at - last) / tau[w]) end
          for i = 1 + w, 1 + cw, nwin do v[i] = v[i] * decay + d[i] end
        end
        v[1] = at
      end
    end
    local dg, vg = d[g], v[g]
    if dg == dg and (vg ~= vg or dg >= vg) then
      for i = g, n do v[i] = d[i] end
    end
    change = struct.pack(format, unpack(v, 1, n))
  end
  writes[#writes + 1] = KEYS[r]
  writes[#writes + 1] = change
  if #writes >= 2000 then
    redis.call('MSET', unpack(writes))
    writes = {}
  end
end
if #writes > 0 then redis.call('MSET', unpack(writes)) end

-- Entities: kept only if not older than the stored version.
stored = mget(nrec, nent)
for e = 1, nent do
  local value = ARGV[a]
  local old = stored[e]
  if not old or struct.unpack('<d', value) >= struct.unpack('<d', old) then
    redis.call('SET', KEYS[nrec + e], value, 'EX', ttl)
  end
  a = a + 1
end

for l = 1, nlane do
  local count = tonumber(ARGV[a])
  redis.call('SADD', KEYS[nrec + nent + l], unpack(ARGV, a + 1, a + count))
  a = a + 1 + count
end

for s = 1, nseen do
  redis.call('SET', KEYS[seen_from + s], '1', 'EX', ttl)
end
return {}
