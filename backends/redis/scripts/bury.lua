-- Sends waiting tasks of one job due at or before a time to dead, a bounded
-- batch per call. KEYS[1] counts, KEYS[2] dead index.
-- ARGV: base, now, job, due_before, reason, ready offset, batch, retention
-- in ms (a workflow run failed here is kept that long).
-- Returns {buried, more (0/1), next ready offset}.
local now, job, due_before, reason = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]), ARGV[5]
local offset, batch = tonumber(ARGV[6]), tonumber(ARGV[7])
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
    local ok, t = pcall(record, rec)
    if ok then
      release_unique(t, seq, now)
      if t.run then
        fail_run(t.run, t.step, reason, now, now + tonumber(ARGV[8]))
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
  if tonumber(string.sub(m, 1, 13)) <= due_before then
    bury(seq_of(m))
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
