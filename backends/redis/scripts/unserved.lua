-- Waiting (pending or retry) tasks of jobs not in the served list (read only).
-- KEYS[1] jobs. ARGV: base, then the served job names.
-- Returns 3 per job: name, count, earliest run_at (that of the first ready
-- task and of the first delayed one: with mixed priorities, an upper bound).
local served = {}
for i = 2, #ARGV do
  served[ARGV[i]] = true
end
local out = {}
for _, job in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if not served[job] then
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
      out[#out + 1] = oldest
    end
  end
end
return out
