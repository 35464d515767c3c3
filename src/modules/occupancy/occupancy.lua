-- The occupancy hot state: one script, one atomic step per call. ARGV[1] is the operation,
-- ARGV[2] the key prefix (keys are built here, so the client's prefix must be passed in); the
-- operation's own arguments follow from ARGV[3].
--
-- Keys (after the prefix):
--   occ:sp:<space>    hash: lot level zone number type sensed overlay status changed_at device
--                     pend pend_since pend_at pend_device pend_boot pend_seq held
--   occ:hold:<session> the space a parking session holds (`held` on the space names the session)
--   occ:dev:<device>  hash: space boot seq at seen battery signal stale meter_wh meter_at
--   occ:cnt:<scope>   hash per lot, level and zone: total free occupied unknown reserved maintenance closed
--   occ:free:<zone>:<type>  set of free spaces;  occ:unk:<zone>:<type>  set of unknown ones (no
--                     sensor, or a silent one): allocation takes those when no free one is left
--   occ:zones:<lot or level> set of zones;  occ:lots  set of lots
--   occ:pending       zset space -> when its pending change is due (ms)
--   occ:seen          zset device -> last message (ms, server time)
--   occ:changes       stream of committed changes, one packed field `c` per entry: read by the
--                     persister (consumer group) and by live feeds; the persister trims it
--   PUBLISH occ:changed once per call that added changes (live feeds then read the stream)
-- Times are the Redis server's clock (TIME), one clock for every ingest instance.

local op = ARGV[1]
local P = ARGV[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- An operator's overlay wins; a space held by a parking session counts as occupied whatever its
-- sensor says (the car may not have reached it yet, or the sensor may be silent); a space held by a
-- reservation (holder `rsv:<id>`) is reserved.
local function status_of(sensed, overlay, held)
  if overlay ~= nil and overlay ~= '' then return overlay end
  if held ~= nil and held ~= '' then
    if string.sub(held, 1, 4) == 'rsv:' then return 'reserved' end
    return 'occupied'
  end
  return sensed
end

-- Moves one space's contribution in the lot, level and zone counters and the free sets.
local function count(sp, delta_total, status, delta)
  for _, scope in ipairs({ sp.lot, sp.level, sp.zone }) do
    local key = P .. 'occ:cnt:' .. scope
    if delta_total ~= 0 then redis.call('HINCRBY', key, 'total', delta_total) end
    redis.call('HINCRBY', key, status, delta)
  end
  if status == 'free' or status == 'unknown' then
    local set = P .. (status == 'free' and 'occ:free:' or 'occ:unk:') .. sp.zone .. ':' .. sp.type
    if delta > 0 then redis.call('SADD', set, sp.id) else redis.call('SREM', set, sp.id) end
  end
end

local function load_space(id)
  local v = redis.call('HMGET', P .. 'occ:sp:' .. id, 'lot', 'level', 'zone', 'number', 'type',
    'sensed', 'overlay', 'pend', 'pend_since', 'pend_at', 'pend_device', 'pend_boot', 'pend_seq', 'held')
  if not v[1] then return nil end
  return { id = id, lot = v[1], level = v[2], zone = v[3], number = v[4], type = v[5],
    sensed = v[6], overlay = v[7] or '', pend = v[8] or '', pend_since = tonumber(v[9] or '0'),
    pend_at = v[10], pend_device = v[11], pend_boot = v[12], pend_seq = v[13], held = v[14] or '' }
end

local emitted = 0

-- Appends a change to the stream, packed in one field (every part is free of '|': ids, codes and
-- numbers by their patterns). The order is ChangeEvent's in occupancy.state.ts.
local function emit(sp, kind, sensed_from, sensed_to, status_from, status_to, at, device, boot, seq)
  redis.call('XADD', P .. 'occ:changes', '*', 'c', table.concat({ sp.id, sp.lot, sp.level, sp.zone,
    sp.number, sp.type, kind, sensed_from, sensed_to, status_from, status_to, sp.overlay,
    tostring(at), device or '', boot or '', tostring(seq or ''), sp.held or '' }, '|'))
  emitted = emitted + 1
  return 1
end

-- One notice per call for the live feeds, however many changes it added.
local function notify()
  if emitted > 0 then redis.call('PUBLISH', P .. 'occ:changed', emitted) end
end

local function clear_pending(sp)
  if sp.pend ~= '' then
    redis.call('HDEL', P .. 'occ:sp:' .. sp.id, 'pend', 'pend_since', 'pend_at', 'pend_device', 'pend_boot', 'pend_seq')
    redis.call('ZREM', P .. 'occ:pending', sp.id)
    sp.pend = ''
  end
end

-- Makes `sensed` the space's sensed state (a committed change).
local function commit(sp, sensed, kind, at, device, boot, seq)
  clear_pending(sp)
  if sp.sensed == sensed then return 0 end
  local from_status = status_of(sp.sensed, sp.overlay, sp.held)
  local to_status = status_of(sensed, sp.overlay, sp.held)
  if from_status ~= to_status then
    count(sp, 0, from_status, -1)
    count(sp, 0, to_status, 1)
  end
  redis.call('HSET', P .. 'occ:sp:' .. sp.id, 'sensed', sensed, 'status', to_status, 'changed_at', tostring(at))
  local from = sp.sensed
  sp.sensed = sensed
  return emit(sp, kind, from, sensed, from_status, to_status, at, device, boot, seq)
end

-- A reading for a bound space: commits at once from unknown or without a dwell time, otherwise
-- only once the new state has held for the dwell time (a flap back cancels it).
local function observe(sp, target, dwell, at, device, boot, seq)
  if target == sp.sensed then
    clear_pending(sp)
    return 0
  end
  if sp.sensed == 'unknown' or dwell <= 0 then
    return commit(sp, target, 'sensor', at, device, boot, seq)
  end
  if sp.pend == target then
    if now - sp.pend_since >= dwell then
      return commit(sp, target, 'sensor', sp.pend_at, sp.pend_device, sp.pend_boot, sp.pend_seq)
    end
    return 0
  end
  redis.call('HSET', P .. 'occ:sp:' .. sp.id, 'pend', target, 'pend_since', tostring(now),
    'pend_at', tostring(at), 'pend_device', device, 'pend_boot', boot, 'pend_seq', tostring(seq))
  redis.call('ZADD', P .. 'occ:pending', now + dwell, sp.id)
  sp.pend, sp.pend_since, sp.pend_at = target, now, tostring(at)
  sp.pend_device, sp.pend_boot, sp.pend_seq = device, boot, tostring(seq)
  return 0
end

if op == 'apply' then
  -- ARGV[3] dwell ms, ARGV[4] how stale the silent-sensor index may get (ms), then 8 per reading:
  -- device boot seq at occupied(1/0/'') battery signal meter(Wh, '').
  -- A device remembers what it reported last (`occ`): a reading that repeats it changes no space
  -- (its space holds that state, or has it pending and the sweep commits it), so most readings
  -- touch the device's hash only.
  -- An empty Redis (lost its data) knows no device: refuse, so that nothing is acknowledged as
  -- "unknown device" before the hot state is rebuilt from MongoDB.
  if redis.call('EXISTS', P .. 'occ:built') == 0 then
    return redis.error_reply('NOTBUILT the occupancy hot state is not built')
  end
  local dwell, seen_every = tonumber(ARGV[3]), tonumber(ARGV[4])
  local accepted, duplicates, stale, changes = 0, 0, 0, 0
  local unknown = {}
  local spaces = {}
  local n = 0
  for i = 5, #ARGV, 8 do
    n = n + 1
    local device, boot, seq, at = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
    local occupied, battery, signal, meter = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
    local dkey = P .. 'occ:dev:' .. device
    local d = redis.call('HMGET', dkey, 'space', 'boot', 'seq', 'at', 'occ', 'stale', 'zseen')
    if not d[1] then
      unknown[#unknown + 1] = n - 1
    else
      local verdict = 'new'
      if d[2] == boot then
        local last = tonumber(d[3])
        if seq == last then verdict = 'duplicate' elseif seq < last then verdict = 'stale' end
      elseif d[4] and tonumber(d[4]) > at then
        verdict = 'stale'
      end
      if verdict == 'duplicate' then
        duplicates = duplicates + 1
      elseif verdict == 'stale' then
        stale = stale + 1
      else
        accepted = accepted + 1
        local fields = { 'boot', boot, 'seq', ARGV[i + 2], 'at', ARGV[i + 3], 'seen', tostring(now) }
        if battery ~= '' then fields[#fields + 1] = 'battery'; fields[#fields + 1] = battery end
        if signal ~= '' then fields[#fields + 1] = 'signal'; fields[#fields + 1] = signal end
        if meter ~= '' then
          fields[#fields + 1] = 'meter_wh'; fields[#fields + 1] = meter
          fields[#fields + 1] = 'meter_at'; fields[#fields + 1] = ARGV[i + 3]
        end
        if occupied ~= '' then fields[#fields + 1] = 'occ'; fields[#fields + 1] = occupied end
        if d[6] == '1' then fields[#fields + 1] = 'stale'; fields[#fields + 1] = '0' end
        redis.call('HSET', dkey, unpack(fields))
        -- `zseen`: when the silent-sensor index last got this device (not every reading does).
        if d[6] == '1' or not d[7] or now - tonumber(d[7]) >= seen_every then
          redis.call('ZADD', P .. 'occ:seen', now, device)
          redis.call('HSET', dkey, 'zseen', tostring(now))
        end
        if occupied ~= '' and d[1] ~= '' and (occupied ~= d[5] or d[6] == '1') then
          local sp = spaces[d[1]] or load_space(d[1])
          if sp then
            spaces[d[1]] = sp
            local target = 'free'
            if occupied == '1' then target = 'occupied' end
            changes = changes + observe(sp, target, dwell, at, device, boot, ARGV[i + 2])
          end
        end
      end
    end
  end
  notify()
  return { accepted, duplicates, stale, changes, unknown }
end

if op == 'sweep' then
  -- ARGV[3] stale after ms, ARGV[4] limit. Commits pending changes that are due, and turns the
  -- spaces of silent sensors to unknown.
  local stale_after, limit = tonumber(ARGV[3]), tonumber(ARGV[4])
  local committed, silenced = 0, 0
  local due = redis.call('ZRANGEBYSCORE', P .. 'occ:pending', '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(due) do
    local sp = load_space(id)
    if sp and sp.pend ~= '' then
      committed = committed + commit(sp, sp.pend, 'sensor', sp.pend_at, sp.pend_device, sp.pend_boot, sp.pend_seq)
    else
      redis.call('ZREM', P .. 'occ:pending', id)
    end
  end
  local silent = redis.call('ZRANGEBYSCORE', P .. 'occ:seen', '-inf', now - stale_after, 'LIMIT', 0, limit)
  for _, device in ipairs(silent) do
    redis.call('ZREM', P .. 'occ:seen', device)
    local dkey = P .. 'occ:dev:' .. device
    local space = redis.call('HGET', dkey, 'space')
    if space then
      -- Forget its last report too: its next reading, whatever it says, decides the space again.
      redis.call('HSET', dkey, 'stale', '1')
      redis.call('HDEL', dkey, 'occ')
      local sp = space ~= '' and load_space(space)
      if sp then silenced = silenced + commit(sp, 'unknown', 'stale', now, device, '', '') end
    end
  end
  notify()
  return { committed, silenced }
end

if op == 'upsert' then
  -- 7 per space from ARGV[3]: id lot level zone number type overlay('' for none)
  local changed = 0
  for i = 3, #ARGV, 7 do
    local id = ARGV[i]
    local next = { id = id, lot = ARGV[i + 1], level = ARGV[i + 2], zone = ARGV[i + 3],
      number = ARGV[i + 4], type = ARGV[i + 5], overlay = ARGV[i + 6] }
    local key = P .. 'occ:sp:' .. id
    local sp = load_space(id)
    local sensed = 'unknown'
    if sp then
      sensed = sp.sensed
      local same = sp.lot == next.lot and sp.level == next.level and sp.zone == next.zone
        and sp.type == next.type and sp.overlay == next.overlay and sp.number == next.number
      if not same then
        next.held = sp.held
        local from_status = status_of(sp.sensed, sp.overlay, sp.held)
        local to_status = status_of(sensed, next.overlay, next.held)
        count(sp, -1, from_status, -1)
        next.sensed = sensed
        count(next, 1, to_status, 1)
        redis.call('HSET', key, 'lot', next.lot, 'level', next.level, 'zone', next.zone,
          'number', next.number, 'type', next.type, 'overlay', next.overlay, 'status', to_status)
        local moved = sp.lot ~= next.lot or sp.level ~= next.level or sp.zone ~= next.zone or sp.type ~= next.type
        if moved then
          -- Feeds keep counts right: out of the old place, into the new one.
          changed = changed + emit(sp, 'removed', sensed, sensed, from_status, from_status, now, '', '', '')
          changed = changed + emit(next, 'placed', sensed, sensed, to_status, to_status, now, '', '', '')
        elseif sp.overlay ~= next.overlay then
          changed = changed + emit(next, 'overlay', sensed, sensed, from_status, to_status, now, '', '', '')
        end
      end
    else
      local status = status_of(sensed, next.overlay)
      count(next, 1, status, 1)
      redis.call('HSET', key, 'lot', next.lot, 'level', next.level, 'zone', next.zone,
        'number', next.number, 'type', next.type, 'overlay', next.overlay, 'sensed', sensed,
        'status', status, 'changed_at', tostring(now), 'device', '')
      next.sensed = sensed
      changed = changed + emit(next, 'placed', sensed, sensed, status, status, now, '', '', '')
    end
    redis.call('SADD', P .. 'occ:lots', next.lot)
    redis.call('SADD', P .. 'occ:zones:' .. next.lot, next.zone)
    redis.call('SADD', P .. 'occ:zones:' .. next.level, next.zone)
  end
  notify()
  return changed
end

if op == 'remove' then
  -- space ids from ARGV[3]
  for i = 3, #ARGV do
    local sp = load_space(ARGV[i])
    if sp then
      clear_pending(sp)
      local status = status_of(sp.sensed, sp.overlay, sp.held)
      count(sp, -1, status, -1)
      if sp.held ~= '' then redis.call('DEL', P .. 'occ:hold:' .. sp.held) end
      local device = redis.call('HGET', P .. 'occ:sp:' .. sp.id, 'device')
      if device and device ~= '' then redis.call('HSET', P .. 'occ:dev:' .. device, 'space', '') end
      redis.call('DEL', P .. 'occ:sp:' .. sp.id)
      emit(sp, 'removed', sp.sensed, sp.sensed, status, status, now, '', '', '')
    end
  end
  notify()
  return 0
end

if op == 'bind' then
  -- ARGV[3] device, ARGV[4] space ('' unbinds; '-' forgets the device). A space that loses its
  -- sensor, or gets a new one, starts over at unknown.
  local device, space = ARGV[3], ARGV[4]
  local dkey = P .. 'occ:dev:' .. device
  local old = redis.call('HGET', dkey, 'space')
  if old and old ~= '' and old ~= space then
    local sp = load_space(old)
    if sp then
      redis.call('HSET', P .. 'occ:sp:' .. old, 'device', '')
      commit(sp, 'unknown', 'unbound', now, device, '', '')
    end
  end
  if space == '-' then
    redis.call('DEL', dkey)
    redis.call('ZREM', P .. 'occ:seen', device)
    notify()
    return 0
  end
  if not old then
    redis.call('HSET', dkey, 'space', space, 'boot', '', 'seq', '-1', 'at', '0', 'stale', '0')
  elseif old ~= space then
    -- Forget what it reported last: its next reading decides the new space's state.
    redis.call('HSET', dkey, 'space', space)
    redis.call('HDEL', dkey, 'occ')
  end
  if space ~= '' and old ~= space then
    local sp = load_space(space)
    if sp then
      local previous = redis.call('HGET', P .. 'occ:sp:' .. space, 'device')
      if previous and previous ~= '' and previous ~= device then
        redis.call('HSET', P .. 'occ:dev:' .. previous, 'space', '')
      end
      redis.call('HSET', P .. 'occ:sp:' .. space, 'device', device)
      commit(sp, 'unknown', 'bound', now, device, '', '')
    end
  end
  notify()
  return 0
end

-- Parking sessions hold spaces: Redis is the arbiter, so two cars never get one space.

-- Makes `session` the holder of a space (or '' to release it), with its counts and a change.
local function set_held(sp, session, kind)
  local from_status = status_of(sp.sensed, sp.overlay, sp.held)
  local to_status = status_of(sp.sensed, sp.overlay, session)
  if from_status ~= to_status then
    count(sp, 0, from_status, -1)
    count(sp, 0, to_status, 1)
  end
  local previous = sp.held
  sp.held = session
  redis.call('HSET', P .. 'occ:sp:' .. sp.id, 'held', session, 'status', to_status, 'changed_at', tostring(now))
  if session ~= '' then
    redis.call('SET', P .. 'occ:hold:' .. session, sp.id)
  else
    redis.call('DEL', P .. 'occ:hold:' .. previous)
    sp.held = previous -- the change names the session that let go
  end
  emit(sp, kind, sp.sensed, sp.sensed, from_status, to_status, now, '', '', '')
  sp.held = session
end

local function space_reply(sp)
  return { sp.id, sp.lot, sp.level, sp.zone, sp.number, sp.type }
end

if op == 'allocate' then
  -- ARGV[3] session, ARGV[4] lot, ARGV[5] zone ('' for any zone of the lot), then space types in
  -- order of preference. Takes a space of the first type that has one: a free one (sensed free, no
  -- overlay, not held), else an unknown one (a space without a sensor, or whose sensor is silent).
  -- Returns the space, or nil when there is none. A session that holds a space already gets that
  -- one back (a retried entry).
  -- An empty Redis knows no free space: refuse (503) rather than answer "full" until it is rebuilt.
  if redis.call('EXISTS', P .. 'occ:built') == 0 then
    return redis.error_reply('NOTBUILT the occupancy hot state is not built')
  end
  local session, lot, zone = ARGV[3], ARGV[4], ARGV[5]
  local current = redis.call('GET', P .. 'occ:hold:' .. session)
  if current then
    local sp = load_space(current)
    if sp and sp.held == session then return space_reply(sp) end
  end
  local zones
  if zone ~= '' then zones = { zone } else zones = redis.call('SMEMBERS', P .. 'occ:zones:' .. lot) end
  table.sort(zones)
  for i = 6, #ARGV do
    for _, kind in ipairs({ 'occ:free:', 'occ:unk:' }) do
      for _, z in ipairs(zones) do
        local id = redis.call('SRANDMEMBER', P .. kind .. z .. ':' .. ARGV[i])
        if id then
          local sp = load_space(id)
          if sp and sp.lot == lot then
            set_held(sp, session, 'held')
            notify()
            return space_reply(sp)
          end
        end
      end
    end
  end
  return nil
end

if op == 'hold' then
  -- ARGV[3] session, ARGV[4] space, ARGV[5] 'rebuild' while the hot state is rebuilt, ARGV[6] a
  -- holder to take the space over from ('' for none). An operator assigns this space, or a
  -- reservation holds it: it must be free, or sensed unknown, with no overlay and no other holder;
  -- a space held by ARGV[6] is handed over whatever its sensor says (the booked car may be on it).
  -- The session's previous space is released.
  if ARGV[5] ~= 'rebuild' and redis.call('EXISTS', P .. 'occ:built') == 0 then
    return redis.error_reply('NOTBUILT the occupancy hot state is not built')
  end
  local session, space, from = ARGV[3], ARGV[4], ARGV[6] or ''
  local sp = load_space(space)
  if not sp then return redis.error_reply('NOSPACE the space is not in the hot state') end
  if sp.held == session then return space_reply(sp) end
  local handed_over = from ~= '' and sp.held == from
  if not handed_over and (sp.held ~= '' or sp.overlay ~= '' or sp.sensed == 'occupied') then
    return redis.error_reply('TAKEN ' .. status_of(sp.sensed, sp.overlay, sp.held))
  end
  local current = redis.call('GET', P .. 'occ:hold:' .. session)
  if current then
    local old = load_space(current)
    if old and old.held == session then set_held(old, '', 'released') end
  end
  if handed_over then
    set_held(sp, '', 'released')
    sp = load_space(space)
  end
  set_held(sp, session, 'held')
  notify()
  return space_reply(sp)
end

if op == 'release' then
  -- ARGV[3] session: lets go of its space, if it holds one. Returns the space id or nil.
  local session = ARGV[3]
  local current = redis.call('GET', P .. 'occ:hold:' .. session)
  if not current then return nil end
  local sp = load_space(current)
  if sp and sp.held == session then
    set_held(sp, '', 'released')
    notify()
  else
    redis.call('DEL', P .. 'occ:hold:' .. session)
  end
  return current
end

if op == 'trim' then
  -- ARGV[3] the oldest entry not yet written to MongoDB, ARGV[4] the retention in ms. Trims the
  -- change stream below both, by the Redis clock, and moves `occ:trimmed-to` forward only (live
  -- feeds compare a client's last id with it).
  local function parse(id)
    local ms, seq = string.match(id, '^(%d+)-(%d+)$')
    return tonumber(ms), tonumber(seq)
  end
  local function less(a, b)
    local am, as = parse(a)
    local bm, bs = parse(b)
    return am < bm or (am == bm and as < bs)
  end
  local min_id = tostring(now - tonumber(ARGV[4])) .. '-0'
  if less(ARGV[3], min_id) then min_id = ARGV[3] end
  local current = redis.call('GET', P .. 'occ:trimmed-to')
  if current and not less(current, min_id) then return current end
  redis.call('SET', P .. 'occ:trimmed-to', min_id)
  redis.call('XTRIM', P .. 'occ:changes', 'MINID', '~', min_id)
  return min_id
end

return redis.error_reply('unknown operation ' .. tostring(op))
