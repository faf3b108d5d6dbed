-- Reads a workflow run (read only). ARGV: base, run.
-- Returns nil for no such run, else {workflow, state, error, created, steps,
-- then 7 per step: name, the steps it takes (comma separated indices), task
-- seq, task state, attempt, last error, output (encoded as a payload
-- element)}.
local rk = base .. 'wr:' .. ARGV[2]
local job, state, err, created, n = unpack(redis.call('HMGET', rk, 'w', 's', 'e', 'c', 'n'))
if not job then
  return false
end
local out = { job, state, err, created, n }
for i = 0, tonumber(n) - 1 do
  local name, after, t, o = unpack(redis.call('HMGET', rk, 'nm' .. i, 'a' .. i, 't' .. i, 'o' .. i))
  local s, a, e = false, false, false
  if t and redis.call('HEXISTS', T, t) == 1 then
    s, a = parse_state(redis.call('HGET', S, t))
    e = redis.call('HGET', E, t)
  end
  local k = #out
  out[k + 1] = name
  out[k + 2] = after
  out[k + 3] = t
  out[k + 4] = s
  out[k + 5] = a
  out[k + 6] = e
  out[k + 7] = o
end
return out
