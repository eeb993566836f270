-- Applies one event's aggregate updates, at most once per event id.
-- Mirrors AggregateRecord::apply in src/features/aggregates.rs: keep them in step
-- (tests/redis_store.rs checks that both backends give the same records).
--
-- A record is a string of 8-byte little-endian doubles in `field_names` order:
-- t, every counter x window (counter-major), gt, every gauge; a clock that was
-- never set is NaN.
--
-- KEYS[1]          the event's dedupe key; KEYS[2 .. R+1] the records it updates;
--                  then the entity key (when ARGV[3] > 0) and the lane-carrier set
--                  key (when ARGV[4] = 1)
-- ARGV[1]          dedupe TTL in seconds
-- ARGV[2]          R, the number of record keys
-- ARGV[3]          entity TTL in seconds, 0 when the event stores no entity
-- ARGV[4]          1 when the event adds a carrier to a lane's set
-- ARGV[5]          number of windows W, then the W time constants in seconds
-- then, per record key: event time, counter count C, C increments, gauge count G,
--                       1 and G values when the event sets gauges (else 0)
-- then, with an entity: its version and JSON (kept only if the version is not
--                       older than the stored one); with a lane set: the carrier
-- Returns 1 when applied, 0 when the event id was already seen.
-- The event id is checked first and marked last: should the script fail part way
-- (out of memory, say), the id stays unmarked and a retry applies the event
-- rather than taking it for a duplicate.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local NAN = 0 / 0
local function pack(x)
  if x == nil then return struct.pack('<d', NAN) end
  return struct.pack('<d', x)
end
local records = tonumber(ARGV[2])
local entity_ttl = tonumber(ARGV[3])
local lane_set = ARGV[4] == '1'
local nwin = tonumber(ARGV[5])
local tau = {}
local a = 6
for w = 1, nwin do
  tau[w] = tonumber(ARGV[a])
  a = a + 1
end
for k = 2, records + 1 do
  local key = KEYS[k]
  local at = tonumber(ARGV[a])
  local nc = tonumber(ARGV[a + 1])
  a = a + 2
  local inc = {}
  for c = 1, nc do
    inc[c] = tonumber(ARGV[a])
    a = a + 1
  end
  local ng = tonumber(ARGV[a])
  local has_gauges = ARGV[a + 1] == '1'
  a = a + 2
  local v = {}
  local raw = redis.call('GET', key)
  if raw then
    for i = 1, #raw / 8 do
      local x = struct.unpack('<d', raw, (i - 1) * 8 + 1)
      if x == x then v[i] = x end -- NaN (a clock never set) stays nil
    end
  end
  local cw = nc * nwin
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
    a = a + ng
  end
  local out = {}
  out[1] = pack(v[1])
  for i = 2, 1 + cw do out[i] = pack(v[i] or 0) end
  out[2 + cw] = pack(v[2 + cw])
  for g = 1, ng do out[2 + cw + g] = pack(v[2 + cw + g] or 0) end
  redis.call('SET', key, table.concat(out))
end
local extra = records + 2
if entity_ttl > 0 then
  local key = KEYS[extra]
  local version = tonumber(ARGV[a])
  local stored = tonumber(redis.call('HGET', key, 'v'))
  if not stored or version >= stored then
    redis.call('HSET', key, 'v', ARGV[a], 'json', ARGV[a + 1])
    redis.call('EXPIRE', key, entity_ttl)
  end
  a = a + 2
  extra = extra + 1
end
if lane_set then
  redis.call('SADD', KEYS[extra], ARGV[a])
end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
return 1
