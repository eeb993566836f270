-- Applies one event's aggregate updates, at most once per event id.
-- Mirrors AggregateRecord::apply in src/features/aggregates.rs: keep them in step
-- (tests/redis_store.rs checks that both backends give the same records).
--
-- KEYS[1]          the event's dedupe key; KEYS[2 .. R+1] the records it updates;
--                  then the entity key (when ARGV[3] > 0) and the lane-carrier set
--                  key (when ARGV[4] = 1)
-- ARGV[1]          dedupe TTL in seconds
-- ARGV[2]          R, the number of record keys
-- ARGV[3]          entity TTL in seconds, 0 when the event stores no entity
-- ARGV[4]          1 when the event adds a carrier to a lane's set
-- ARGV[5]          number of windows W, then W pairs (window name, tau seconds)
-- then, per record key: event time, counter count C, C pairs (counter, increment),
--                       gauge count G, G pairs (gauge, value)
-- then, with an entity: its version and JSON (kept only if the version is not
--                       older than the stored one); with a lane set: the carrier
-- Returns 1 when applied, 0 when the event id was already seen.
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
local function fmt(x) return string.format('%.17g', x) end
local records = tonumber(ARGV[2])
local entity_ttl = tonumber(ARGV[3])
local lane_set = ARGV[4] == '1'
local nwin = tonumber(ARGV[5])
local wname, tau = {}, {}
local a = 6
for w = 1, nwin do
  wname[w] = ARGV[a]
  tau[w] = tonumber(ARGV[a + 1])
  a = a + 2
end
for k = 2, records + 1 do
  local key = KEYS[k]
  local at = tonumber(ARGV[a])
  local nc = tonumber(ARGV[a + 1])
  a = a + 2
  if nc > 0 then
    local fields, incs = {}, {}
    for c = 1, nc do
      local name, inc = ARGV[a], tonumber(ARGV[a + 1])
      a = a + 2
      for w = 1, nwin do
        fields[#fields + 1] = name .. '_' .. wname[w]
        incs[#incs + 1] = inc
      end
    end
    local last = tonumber(redis.call('HGET', key, 't'))
    local old = redis.call('HMGET', key, unpack(fields))
    local out = {}
    for i = 1, #fields do
      local w = (i - 1) % nwin + 1
      local v = tonumber(old[i]) or 0
      if last and at < last then
        -- an older event: discount its increment to the record's clock
        v = v + incs[i] * math.exp(-(last - at) / tau[w])
      else
        local decay = 0
        if last then decay = math.exp(-(at - last) / tau[w]) end
        v = v * decay + incs[i]
      end
      out[#out + 1] = fields[i]
      out[#out + 1] = fmt(v)
    end
    if not last or at >= last then
      out[#out + 1] = 't'
      out[#out + 1] = fmt(at)
    end
    redis.call('HSET', key, unpack(out))
  end
  local ng = tonumber(ARGV[a])
  a = a + 1
  if ng > 0 then
    local gt = tonumber(redis.call('HGET', key, 'gt'))
    if not gt or at >= gt then
      local out = {'gt', fmt(at)}
      for g = 1, ng do
        out[#out + 1] = ARGV[a]
        out[#out + 1] = ARGV[a + 1]
        a = a + 2
      end
      redis.call('HSET', key, unpack(out))
    else
      a = a + 2 * ng
    end
  end
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
return 1
