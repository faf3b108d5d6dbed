-- Lists the workflow runs of one queue, newest (highest number) first, from
-- its run index `wl`; a member whose run hash is gone (expired before the
-- purge took it out) is skipped and taken out. Looks at `budget` index
-- entries at most, so that a filter that matches few runs of a big index
-- does not hold the server: the caller goes on from the cursor returned.
-- KEYS[1] the run index `wl`, KEYS[2] jobs. ARGV: base, before (only runs
-- with a lower number; '' for none), workflow ('' for any), state ('' for
-- any), limit, budget.
-- Returns {cursor, run numbers...}: the cursor (the `before` to go on from)
-- when the budget ran out before the index or the limit, else false.
local base = ARGV[1]
local before, workflow, state = ARGV[2], ARGV[3], ARGV[4]
local limit, budget = tonumber(ARGV[5]), tonumber(ARGV[6])
local out = { false }
-- A workflow's steps are tasks of its job: a queue that never saw the job
-- never ran the workflow.
if workflow ~= '' and redis.call('SISMEMBER', KEYS[2], workflow) == 0 then
  return out
end
local max = '+inf'
if before ~= '' then
  max = '(' .. before
end
local seen, gone = 0, {}
while #out - 1 < limit do
  if seen >= budget then
    out[1] = max
    break
  end
  local runs = redis.call('ZREVRANGEBYSCORE', KEYS[1], max, '-inf', 'LIMIT', 0, math.min(200, budget - seen))
  if #runs == 0 then
    break
  end
  for _, run in ipairs(runs) do
    seen = seen + 1
    max = '(' .. run
    local w, s = unpack(redis.call('HMGET', base .. 'wr:' .. run, 'w', 's'))
    if not w then
      gone[#gone + 1] = run
    elseif (workflow == '' or w == workflow) and (state == '' or s == state) then
      out[#out + 1] = run
      if #out - 1 >= limit then
        break
      end
    end
  end
end
if #gone > 0 then
  redis.call('ZREM', KEYS[1], unpack(gone))
end
if out[1] then
  out[1] = string.sub(out[1], 2)
end
return out
