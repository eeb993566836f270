-- Applies a run of events, folded by the service into one change per record,
-- entity and lane set (src/features/batch.rs), all or nothing. Beside the
-- events come the facts of the legs' stages (src/features/updates.rs), each
-- counted once per leg however many reports of the leg carry it: a leg's state
-- is stored with the mask of its stages counted. The facts the service
-- believes new are folded in with the events; those it believes counted come
-- as a leg and a stage only. If any event's id was seen before, or any belief
-- about a fact is wrong, nothing is written and the script answers which, so
-- the service folds again, knowing better, and retries.
--
-- Records are strings of 8-byte little-endian doubles in `field_names` order:
-- t, every counter x window (counter-major), gt, every gauge; a clock that was
-- never set is NaN. A change has the same layout (the record those events alone
-- would leave) and is merged as AggregateRecord::merge in
-- src/features/aggregates.rs does: keep the two in step (tests/redis_store.rs
-- checks that both backends give the same records).
--
-- Event ids and entities live in time buckets — a set of ids and a hash of
-- entities per period — that expire whole: the current bucket (written to)
-- comes first, then the ones that may still hold something. An entity is its
-- version (a double), the mask of its leg's stages counted (a double), then
-- its JSON; a leg whose stages were counted while its state was not at hand
-- is kept as a version of -inf and the mask alone. The masks of a leg over
-- the live buckets add up.
--
-- KEYS: R record keys, B entity buckets, L lane set keys, B id buckets, and the
--       marker of this round of the call (set when a chunk is refused)
-- ARGV: when the current buckets expire (Unix seconds); B; W, the number of
--       windows; K, the number of record kinds, and per kind its W time
--       constants in seconds and how long its records live after a write (0:
--       for ever); R, N (entities), L, E (event ids), F (facts believed new),
--       P (facts believed counted); the E ids; per fact its entity (1-based)
--       and its stage's bit; per record its kind (0-based), its counter field
--       count (counters x W) and its change; per entity its field and its
--       value, kept only if its version is not older than any stored (empty:
--       a leg only some of whose facts come), its mask the stages of its
--       facts here; per lane set its carrier count and the carriers
-- Returns nothing when applied; {0} when an earlier chunk of the same round
-- was refused (then this one is not applied either, so that the service's
-- retry applies the call's events in their order); otherwise the positions
-- (1-based, among the E ids and then the F + P facts) of the events seen
-- before, the facts believed new that were counted and the facts believed
-- counted that were not. All reads come before the first write and ids are
-- marked last, so a script that fails part way leaves them unmarked and a
-- retry applies the events instead of taking them for duplicates.
local expire_at = ARGV[1]
local nbucket = tonumber(ARGV[2])
local nwin = tonumber(ARGV[3])
local nkind = tonumber(ARGV[4])
local taus, ttls = {}, {}
local a = 5
for k = 1, nkind do
  local t = {}
  for w = 1, nwin do t[w] = tonumber(ARGV[a + w - 1]) end
  taus[k] = t
  ttls[k] = tonumber(ARGV[a + nwin])
  a = a + nwin + 1
end
local nrec, nent, nlane, nevent, nfresh, nheld =
  tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]),
  tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
a = a + 6
local ids_at = a
a = a + nevent
local facts_at = a
a = a + 2 * (nfresh + nheld)
local entity_buckets = nrec
local id_buckets = nrec + nbucket + nlane

-- Calls `command key first..last` over ARGV in slices Lua's stack can hold,
-- with `per` arguments an item; answers concatenated.
local function sliced(command, key, first, count, per)
  local out = {}
  local step = 1000 * per
  for from = first, first + count * per - 1, step do
    local to = math.min(from + step - 1, first + count * per - 1)
    local got = redis.call(command, key, unpack(ARGV, from, to))
    if type(got) == 'table' then
      for i = 1, #got do out[#out + 1] = got[i] end
    end
  end
  return out
end

local marker = KEYS[id_buckets + nbucket + 1]
if redis.call('EXISTS', marker) == 1 then return {0} end

-- Which of the `count` ids from ARGV[first] are in a live id bucket.
local function seen_among(first, count)
  local out = {}
  for b = 1, nbucket do
    local key = KEYS[id_buckets + b]
    if count > 0 and redis.call('EXISTS', key) == 1 then
      local found = sliced('SMISMEMBER', key, first, count, 1)
      for i = 1, count do
        if found[i] == 1 then out[i] = true end
      end
    end
  end
  return out
end

local seen = seen_among(ids_at, nevent)
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

-- Where the entities start in ARGV: after the R record triples.
local entities_at = a + 3 * nrec
local fields = {}
for e = 1, nent do fields[e] = ARGV[entities_at + 2 * (e - 1)] end
-- The mask of stages counted in a stored entity.
local function mask_of(value)
  if #value < 16 or string.sub(value, 9, 9) == '{' then return 0 end
  -- struct.unpack also returns the position after the value: drop it.
  local mask = struct.unpack('<d', value, 9)
  return mask
end
-- The value with its mask replaced by `mask`.
local function with_mask(value, mask)
  local json = ''
  if string.sub(value, 9, 9) == '{' then
    json = string.sub(value, 9)
  elseif #value > 16 then
    json = string.sub(value, 17)
  end
  return string.sub(value, 1, 8) .. struct.pack('<d', mask) .. json
end
-- The newest stored version of each entity and its value, and the stages
-- counted, over the live buckets.
local newest, newest_value, counted = {}, {}, {}
for e = 1, nent do counted[e] = 0 end
for b = 1, nbucket do
  local key = KEYS[entity_buckets + b]
  if nent > 0 and redis.call('EXISTS', key) == 1 then
    for first = 1, nent, 1000 do
      local last = math.min(first + 999, nent)
      local got = redis.call('HMGET', key, unpack(fields, first, last))
      for i = 1, #got do
        if got[i] and #got[i] >= 8 then
          local version = struct.unpack('<d', got[i])
          local e = first + i - 1
          if not newest[e] or version > newest[e] then
            newest[e] = version
            newest_value[e] = got[i]
          end
          counted[e] = bit.bor(counted[e], mask_of(got[i]))
        end
      end
    end
  end
end

-- Every event new, every fact as believed?
local wrong = {}
for s = 1, nevent do
  if seen[s] then wrong[#wrong + 1] = s end
end
local adds = {}
for f = 1, nfresh + nheld do
  local e = tonumber(ARGV[facts_at + 2 * (f - 1)])
  local stage = tonumber(ARGV[facts_at + 2 * f - 1])
  local was = bit.band(counted[e], stage) ~= 0
  if (f <= nfresh) == was then
    wrong[#wrong + 1] = nevent + f
  elseif f <= nfresh then
    adds[e] = bit.bor(adds[e] or 0, stage)
  end
end
if #wrong > 0 then
  redis.call('SET', marker, '1', 'EX', 60)
  return wrong
end

-- Records: merged in Lua, written with one MSET per thousand. A record not
-- stored yet (or of another layout) is simply its change.
local stored = mget(0, nrec)
local state = {}
local order = {}
local expiring = {}
local ra = a
for r = 1, nrec do
  local kind = tonumber(ARGV[ra]) + 1
  local cw = tonumber(ARGV[ra + 1])
  local change = ARGV[ra + 2]
  local tau = taus[kind]
  ra = ra + 3
  local key = KEYS[r]
  local n = #change / 8
  local format = format_of(n)
  local d = {struct.unpack(format, change)}
  local v = state[key]
  if not v then
    order[#order + 1] = key
    if ttls[kind] > 0 then expiring[#expiring + 1] = {key, ttls[kind]} end
    local raw = stored[r]
    if raw and #raw == #change then v = {struct.unpack(format, raw)} end
  end
  if not v or #v - 1 ~= n then
    -- struct.unpack returns the next position last: n values and one more.
    v = d
  else
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
  end
  state[key] = v
end
local writes = {}
for _, key in ipairs(order) do
  local v = state[key]
  local n = #v - 1
  writes[#writes + 1] = key
  writes[#writes + 1] = struct.pack(format_of(n), unpack(v, 1, n))
  if #writes >= 2000 then
    redis.call('MSET', unpack(writes))
    writes = {}
  end
end
if #writes > 0 then redis.call('MSET', unpack(writes)) end
a = a + 3 * nrec
for _, e in ipairs(expiring) do redis.call('EXPIRE', e[1], e[2]) end

-- Entities: kept only if not older than any stored version; the stages
-- counted go with the value written, or with a copy of the newest stored.
a = a + 2 * nent
if nent > 0 then
  local writes = {}
  for e = 1, nent do
    local field, value = fields[e], ARGV[entities_at + 2 * e - 1]
    local mask = bit.bor(counted[e], adds[e] or 0)
    local write
    if #value > 0 and (not newest[e] or struct.unpack('<d', value) >= newest[e]) then
      write = value
      if mask_of(value) ~= mask then write = with_mask(value, mask) end
    elseif mask ~= counted[e] then
      write = with_mask(newest_value[e] or struct.pack('<d', -math.huge), mask)
    end
    if write then
      writes[#writes + 1] = field
      writes[#writes + 1] = write
    end
    if #writes >= 2000 or (e == nent and #writes > 0) then
      redis.call('HSET', KEYS[entity_buckets + 1], unpack(writes))
      writes = {}
    end
  end
  redis.call('EXPIREAT', KEYS[entity_buckets + 1], expire_at)
end

for l = 1, nlane do
  local count = tonumber(ARGV[a])
  redis.call('SADD', KEYS[nrec + nbucket + l], unpack(ARGV, a + 1, a + count))
  a = a + 1 + count
end

if nevent > 0 then
  sliced('SADD', KEYS[id_buckets + 1], ids_at, nevent, 1)
  redis.call('EXPIREAT', KEYS[id_buckets + 1], expire_at)
end
return {}
