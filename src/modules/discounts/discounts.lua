-- A discount code's use counters: one atomic step per call. KEYS[1] is the code's total uses
-- (a string counter), KEYS[2] its uses per user (a hash user id -> uses). ARGV[1] is the operation.
--
-- take  ARGV: max uses (0: none), max per user (0: none), user id ('': none)
--       -> the new total, or -1 counters missing (rebuild first), -2 limit reached, -3 the user's limit
-- give  ARGV: user id ('': none) -> 1; hands back one use of a redemption that was not recorded
-- seed  ARGV: total, then user id and uses pairs -> 1 when seeded, 0 when counters exist already

local op = ARGV[1]
local uses, users = KEYS[1], KEYS[2]

if op == 'take' then
  local total = redis.call('GET', uses)
  if not total then return -1 end
  total = tonumber(total)
  local max = tonumber(ARGV[2])
  if max > 0 and total >= max then return -2 end
  local user = ARGV[4]
  if user ~= '' then
    local per_user = tonumber(ARGV[3])
    local mine = tonumber(redis.call('HGET', users, user) or '0')
    if per_user > 0 and mine >= per_user then return -3 end
    redis.call('HINCRBY', users, user, 1)
  end
  return redis.call('INCR', uses)
elseif op == 'give' then
  if tonumber(redis.call('GET', uses) or '0') > 0 then redis.call('DECR', uses) end
  local user = ARGV[2]
  if user ~= '' and tonumber(redis.call('HGET', users, user) or '0') > 0 then
    redis.call('HINCRBY', users, user, -1)
  end
  return 1
elseif op == 'seed' then
  if not redis.call('SET', uses, ARGV[2], 'NX') then return 0 end
  redis.call('DEL', users)
  for i = 3, #ARGV, 2 do redis.call('HSET', users, ARGV[i], ARGV[i + 1]) end
  return 1
end
return redis.error_reply('unknown operation ' .. tostring(op))
