-- Claims up to `max` due tasks of one job for one worker.
-- KEYS[1] ready set, KEYS[2] delayed set, KEYS[3] the worker's in-flight set,
-- KEYS[4] counts, KEYS[5] the worker's last-claim record. Tasks whose ack
-- needs more than the in-flight set tells (workflow steps, unique keys) are
-- also put in the worker's `sp:<worker>` set.
-- ARGV: base, now, max, worker, move batch, claim token, then the tokens of
-- this worker's claims whose replies were lost.
-- Returns {next_due or -1, then 7 per task: seq, attempt, max_attempts,
-- run_at, priority, payload, workflow run (nil for a plain task)}.
local now, max, worker = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local move_batch, token = tonumber(ARGV[5]), ARGV[6]
local out = { -1 }
local claimed = {}

local function emit(seq, attempt, v)
  local o = #out
  out[o + 1] = seq
  out[o + 2] = attempt
  out[o + 3] = v[3]
  out[o + 4] = v[4]
  out[o + 5] = v[5]
  out[o + 6] = v[6]
  out[o + 7] = v[7]
  claimed[#claimed + 1] = seq
end

-- 1. Redeliver a claim whose reply never reached the worker.
if #ARGV > 6 then
  local record = redis.call('LRANGE', KEYS[5], 0, -1)
  local lost = false
  for i = 7, #ARGV do
    if record[1] == ARGV[i] then
      lost = true
    end
  end
  if lost then
    for i = 2, #record do
      local seq = record[i]
      local v = redis.call('HMGET', tkey(seq), 's', 'a', 'm', 'r', 'pr', 'p', 'wr', 'u', 'w')
      if v[1] == 'running' and v[9] == worker then
        emit(seq, v[2], v)
      end
    end
  end
end
local redelivered = #claimed

-- 2. Move due delayed tasks to the ready set, a bounded batch per claim.
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, move_batch)
if #due > 0 then
  local job = string.sub(KEYS[2], #base + 3)
  for _, seq in ipairs(due) do
    local run_at, priority = unpack(redis.call('HMGET', tkey(seq), 'r', 'pr'))
    if run_at then
      make_ready(job, priority, run_at, seq)
    end
  end
  redis.call('ZREM', KEYS[2], unpack(due))
end

-- 3. Pop the best ready tasks.
local want = max - redelivered
if want > 0 then
  local popped = redis.call('ZPOPMIN', KEYS[1], want)
  for i = 1, #popped, 2 do
    local seq = tostring(tonumber(string.sub(popped[i], 14)))
    local tk = tkey(seq)
    local v = redis.call('HMGET', tk, 's', 'a', 'm', 'r', 'pr', 'p', 'wr', 'u')
    local state = v[1]
    if state == 'pending' or state == 'retry' then
      count(state, -1)
      count('running', 1)
      local attempt = tonumber(v[2]) + 1
      redis.call('HSET', tk, 's', 'running', 'w', worker, 'a', attempt)
      emit(seq, attempt, v)
      if v[7] or v[8] then
        -- A workflow step or a task with a unique key: its ack reads more.
        redis.call('SADD', base .. 'sp:' .. worker, seq)
      end
    end
  end
  if #claimed > redelivered then
    for i = redelivered + 1, #claimed, 500 do
      redis.call('SADD', KEYS[3], unpack(claimed, i, math.min(i + 499, #claimed)))
    end
  end
end

-- 4. Record this claim, so that its tasks can be redelivered if the reply is lost.
redis.call('DEL', KEYS[5])
if #claimed > 0 then
  redis.call('RPUSH', KEYS[5], token)
  for i = 1, #claimed, 500 do
    redis.call('RPUSH', KEYS[5], unpack(claimed, i, math.min(i + 499, #claimed)))
  end
  redis.call('PEXPIRE', KEYS[5], 86400000)
else
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if first[2] then
    out[1] = tonumber(first[2])
  end
end
flush_counts()
return out
