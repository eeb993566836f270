-- Applies a chunk of events' aggregate updates, each event at most once per id.
-- Mirrors AggregateRecord::apply in src/features/aggregates.rs: keep them in step
-- (tests/redis_store.rs checks that both backends give the same records).
--
-- A record is a string of 8-byte little-endian doubles in `field_names` order:
-- t, every counter x window (counter-major), gt, every gauge; a clock that was
-- never set is NaN. Each record the chunk touches is read once and written once.
--
-- KEYS             every key the chunk touches, each once; events refer to them
--                  by index
-- ARGV[1]          dedupe TTL in seconds (also the entities' TTL)
-- ARGV[2]          number of windows W, then the W time constants in seconds
-- then the number of events E, and per event:
--   its dedupe key index, R (records), entity key index (0: none), lane set key
--   index (0: none); per record: key index, event time, counter count C, C
--   increments, gauge count G, then 1 and G values when the event sets gauges
--   (else 0); with an entity: its version and JSON (kept only if the version is
--   not older than the stored one); with a lane set: the carrier
-- Returns one number per event: 1 applied, 0 already seen (earlier, or earlier
-- in this chunk). Event ids are marked only after everything is written, so a
-- script that fails part way leaves them unmarked and a retry applies them.
local NAN = 0 / 0
local ttl = ARGV[1]
local nwin = tonumber(ARGV[2])
local tau = {}
local a = 3
for w = 1, nwin do
  tau[w] = tonumber(ARGV[a])
  a = a + 1
end
local records = {}  -- key index -> {values}, read on first use
local dirty = {}    -- key index -> {cw, ng} of a record to write back
local function load(k)
  local v = records[k]
  if v then return v end
  v = {}
  local raw = redis.call('GET', KEYS[k])
  if raw then
    for i = 1, #raw / 8 do
      local x = struct.unpack('<d', raw, (i - 1) * 8 + 1)
      if x == x then v[i] = x end -- NaN (a clock never set) stays nil
    end
  end
  records[k] = v
  return v
end
local seen = {}     -- dedupe key index -> true, for ids seen in this chunk
local applied = {}
local answers = {}
local events = tonumber(ARGV[a])
a = a + 1
for e = 1, events do
  local seen_key = tonumber(ARGV[a])
  local nrec = tonumber(ARGV[a + 1])
  local entity_key = tonumber(ARGV[a + 2])
  local lane_key = tonumber(ARGV[a + 3])
  a = a + 4
  local fresh = not seen[seen_key] and redis.call('EXISTS', KEYS[seen_key]) == 0
  seen[seen_key] = true
  for r = 1, nrec do
    local k = tonumber(ARGV[a])
    local at = tonumber(ARGV[a + 1])
    local nc = tonumber(ARGV[a + 2])
    a = a + 3
    local inc = {}
    for c = 1, nc do
      inc[c] = tonumber(ARGV[a])
      a = a + 1
    end
    local ng = tonumber(ARGV[a])
    local has_gauges = ARGV[a + 1] == '1'
    a = a + 2
    local cw = nc * nwin
    if fresh then
      local v = load(k)
      if nc > 0 then
        local last = v[1]
        for c = 1, nc do
          for w = 1, nwin do
            local i = 1 + (c - 1) * nwin + w
            local old = v[i] or 0
            if last and at < last then
              -- an older event: discount its increment to the record's clock
              v[i] = old + inc[c] * math.exp(-(last - at) / tau[w])
            else
              local decay = 0
              if last then decay = math.exp(-(at - last) / tau[w]) end
              v[i] = old * decay + inc[c]
            end
          end
        end
        if not last or at >= last then v[1] = at end
      end
      if has_gauges then
        local gt = v[2 + cw]
        if not gt or at >= gt then
          v[2 + cw] = at
          for g = 1, ng do
            v[2 + cw + g] = tonumber(ARGV[a + g - 1])
          end
        end
      end
      dirty[k] = {cw, ng}
    end
    if has_gauges then a = a + ng end
  end
  if entity_key > 0 then
    if fresh then
      local key = KEYS[entity_key]
      local version = tonumber(ARGV[a])
      local stored = tonumber(redis.call('HGET', key, 'v'))
      if not stored or version >= stored then
        redis.call('HSET', key, 'v', ARGV[a], 'json', ARGV[a + 1])
        redis.call('EXPIRE', key, ttl)
      end
    end
    a = a + 2
  end
  if lane_key > 0 then
    if fresh then redis.call('SADD', KEYS[lane_key], ARGV[a]) end
    a = a + 1
  end
  if fresh then applied[#applied + 1] = seen_key end
  answers[e] = fresh and 1 or 0
end
local function pack(x)
  if x == nil then return struct.pack('<d', NAN) end
  return struct.pack('<d', x)
end
for k, shape in pairs(dirty) do
  local v, cw, ng = records[k], shape[1], shape[2]
  local out = {pack(v[1])}
  for i = 2, 1 + cw do out[i] = pack(v[i] or 0) end
  out[2 + cw] = pack(v[2 + cw])
  for g = 1, ng do out[2 + cw + g] = pack(v[2 + cw + g] or 0) end
  redis.call('SET', KEYS[k], table.concat(out))
end
for _, k in ipairs(applied) do
  redis.call('SET', KEYS[k], '1', 'EX', ttl)
end
return answers
