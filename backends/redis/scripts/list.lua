-- Lists tasks of one queue by ascending seq (read only).
-- KEYS[1] jobs, KEYS[2] workers. ARGV: base, state ('' for any), job ('' for
-- any), after (seq), limit.
-- Returns 14 per task: seq, then the fields j s a m pr r c f u e w p o.
local state, job, after, limit = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])

local function matches(seq, want)
  local s, j = unpack(redis.call('HMGET', tkey(seq), 's', 'j'))
  return s and (want == nil or s == want) and (job == '' or j == job)
end

-- Finished states have an index by seq: walk it from `after`.
local function from_index(name)
  local found = {}
  local cursor = after
  while #found < limit do
    local ids = redis.call('ZRANGEBYSCORE', base .. name, '(' .. cursor, '+inf', 'LIMIT', 0, 500)
    if #ids == 0 then
      break
    end
    for _, id in ipairs(ids) do
      if matches(id, name) then
        found[#found + 1] = tonumber(id)
        if #found >= limit then
          break
        end
      end
    end
    cursor = ids[#ids]
  end
  return found
end

local function jobs()
  if job ~= '' then
    return { job }
  end
  return redis.call('SMEMBERS', KEYS[1])
end

-- Live states are read from the ready, delayed and in-flight sets.
local function live(want)
  local found = {}
  local function consider(seq)
    seq = tonumber(seq)
    if seq > after and matches(seq, want) then
      found[#found + 1] = seq
    end
  end
  for _, j in ipairs(jobs()) do
    if want == 'pending' then
      for _, m in ipairs(redis.call('ZRANGE', base .. 'r:' .. j, 0, -1)) do
        consider(string.sub(m, 14))
      end
    end
    if want == 'pending' or want == 'retry' then
      for _, seq in ipairs(redis.call('ZRANGE', base .. 'd:' .. j, 0, -1)) do
        consider(seq)
      end
    end
  end
  if want == 'running' then
    for _, w in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
      for _, seq in ipairs(redis.call('SMEMBERS', base .. 'if:' .. w)) do
        consider(seq)
      end
    end
  end
  table.sort(found)
  return found
end

local function of_state(s)
  if s == 'done' or s == 'dead' or s == 'cancelled' then
    return from_index(s)
  end
  return live(s)
end

local seqs
if state ~= '' then
  seqs = of_state(state)
else
  seqs = {}
  for _, s in ipairs({ 'pending', 'running', 'retry', 'done', 'dead', 'cancelled' }) do
    for _, seq in ipairs(of_state(s)) do
      seqs[#seqs + 1] = seq
    end
  end
  table.sort(seqs)
end

local out = {}
for i = 1, math.min(#seqs, limit) do
  local v = redis.call('HMGET', tkey(seqs[i]), 'j', 's', 'a', 'm', 'pr', 'r', 'c', 'f', 'u', 'e', 'w', 'p', 'o')
  out[#out + 1] = seqs[i]
  for k = 1, 13 do
    out[#out + 1] = v[k]
  end
end
return out
