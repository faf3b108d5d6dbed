-- Sends waiting tasks of one job due at or before a time to dead, a bounded
-- batch per call — if, checked here, no worker has served the job since a
-- time (given as an age, compared on the server's clock as the heartbeats
-- store it; see unserved.lua). A workflow step buried fails its run.
-- KEYS[1] counts, KEYS[2] dead index, KEYS[3] when each job was last served.
-- ARGV: base, now, job, due_before, reason, ready offset, batch, retention
-- in ms (-1: kept; a workflow run failed here is kept that long), age in ms.
-- Returns {buried, more (0/1), next ready offset}.
local now, job, due_before, reason = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]), ARGV[5]
local offset, batch = tonumber(ARGV[6]), tonumber(ARGV[7])
retention = tonumber(ARGV[8])
local time = redis.call('TIME')
local since = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) - tonumber(ARGV[9])
local seen = tonumber(redis.call('HGET', KEYS[3], job) or '')
if seen and seen >= since then
  -- Served meanwhile: nothing is buried.
  return { 0, 0, offset }
end
local ready, delayed = base .. 'r:' .. job, base .. 'd:' .. job
local buried = 0

local function bury(seq)
  local rec = redis.call('HGET', T, seq)
  local v = redis.call('HGET', S, seq)
  local state = parse_state(v)
  if rec and (state == 'pending' or state == 'retry') then
    redis.call('HSET', S, seq, finish_value('x', v, now))
    redis.call('HSET', E, seq, reason)
    redis.call('ZADD', KEYS[2], seq, seq)
    count(state, -1)
    count('dead', 1)
    buried = buried + 1
    -- An unreadable record is buried all the same.
    local t = try_record(rec)
    if t then
      release_unique(t, seq, now)
      if t.run then
        fail_run(t.run, t.step, reason, now)
      end
    end
  end
end

local ids = redis.call('ZRANGEBYSCORE', delayed, '-inf', due_before, 'LIMIT', 0, batch)
for _, seq in ipairs(ids) do
  bury(seq)
end
if #ids > 0 then
  redis.call('ZREM', delayed, unpack(ids))
end

local members = redis.call('ZRANGE', ready, offset, offset + batch - 1)
local removed = {}
for _, m in ipairs(members) do
  local at, seq = tonumber(string.sub(m, 1, 13)), seq_of(m)
  if at and seq and at <= due_before then
    bury(seq)
    removed[#removed + 1] = m
  end
end
if #removed > 0 then
  redis.call('ZREM', ready, unpack(removed))
end
flush_counts()
local more = 0
if #ids == batch or #members == batch then
  more = 1
end
return { buried, more, offset + #members - #removed }
