-- Waiting (pending or retry) tasks of the jobs that no worker has served
-- (heartbeaten for) since a time (read only). The time comes as an age, so
-- that it is compared on the server's clock, which the heartbeats store:
-- "since" is the server's `TIME` minus the age.
-- KEYS[1] jobs, KEYS[2] when each job was last served. ARGV: base, age in ms.
-- Returns 3 per job: name, count, earliest run_at (that of the first ready
-- task and of the first delayed one: with mixed priorities, an upper bound).
local time = redis.call('TIME')
local since = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) - tonumber(ARGV[2])
local out = {}
for _, job in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local seen = tonumber(redis.call('HGET', KEYS[2], job) or '')
  if not seen or seen < since then
    local ready, delayed = base .. 'r:' .. job, base .. 'd:' .. job
    local n = redis.call('ZCARD', ready) + redis.call('ZCARD', delayed)
    if n > 0 then
      local oldest = nil
      local first = redis.call('ZRANGE', ready, 0, 0)
      if first[1] then
        oldest = tonumber(string.sub(first[1], 1, 13))
      end
      local due = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
      if due[2] and (not oldest or tonumber(due[2]) < oldest) then
        oldest = tonumber(due[2])
      end
      out[#out + 1] = job
      out[#out + 1] = n
      out[#out + 1] = oldest or 0
    end
  end
end
return out
