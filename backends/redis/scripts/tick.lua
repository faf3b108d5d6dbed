-- Records that a tick of a schedule was enqueued: the stored tick becomes
-- the later of the stored one and this one, so processes racing to record
-- never move it back.
-- KEYS[1] schedules (schedule name -> last tick in ms, a decimal integer).
-- ARGV: schedule, tick (ms, a decimal integer).
-- Returns 1 if it stored the tick, 0 if the stored one is as late or later;
-- an error reply, before any write, when either is not a decimal integer.
-- Ticks are compared as decimal strings: Lua's numbers (doubles) are exact
-- only up to 2^53.

-- The sign (-1 or 1) and the digits without leading zeros of `s`, if it is
-- a decimal integer of at most 19 digits (an i64, roughly).
local function decimal(s)
  local sign, digits = string.match(s or '', '^(%-?)0*(%d*)$')
  if not sign or #s == #sign or #digits > 19 then
    return nil
  end
  if digits == '' then
    return 1, '0'
  end
  return (sign == '-' and -1 or 1), digits
end

-- Whether decimal (sign, digits) `a` is less than `b`.
local function less(as, ad, bs, bd)
  if as ~= bs then
    return as < bs
  end
  local smaller
  if #ad ~= #bd then
    smaller = #ad < #bd
  elseif ad == bd then
    return false
  else
    smaller = ad < bd
  end
  if as < 0 then
    return not smaller
  end
  return smaller
end

local ns, nd = decimal(ARGV[2])
if not ns then
  return redis.error_reply('ERR errand: the tick `' .. ARGV[2] .. '` is not a time in ms')
end
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local olds, od = decimal(old)
  if not olds then
    return redis.error_reply('ERR errand: the stored last tick `' .. string.sub(old, 1, 40)
      .. '` is not a time in ms')
  end
  if not less(olds, od, ns, nd) then
    return 0
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
