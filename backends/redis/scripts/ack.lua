-- Records the outcomes of finished runs of one worker.
-- KEYS[1] the worker's in-flight set, KEYS[2] counts, KEYS[3] blocks of the
-- done bitmaps, KEYS[4] dead index.
-- ARGV: base, now, worker, retention in ms (-1: kept), wake channel, queue
-- name, the worker's job, then 4 per ack: seq, kind (D done, R retry, X
-- dead, S snooze, W done for a workflow step: then a 5th, the output encoded
-- as a payload element, which is what is stored, in the run), at, data
-- (result or error; empty for W).
-- A task is running for this worker while it is in the worker's in-flight
-- set; acks for other tasks are ignored. Only the tasks in the worker's
-- `sp:` set (workflow steps, unique keys) have their record read; their
-- state is written at once (a workflow step's ack may read other steps'),
-- the others' with one HSET per call. A task whose record or state cannot
-- be read goes dead with the read error instead of taking its outcome.
-- Done tasks get an entry in `x` (when they expire) for `purge.lua`.
-- Returns {finished, tasks enqueued by workflow steps}.
local now, worker, job = tonumber(ARGV[2]), ARGV[3], ARGV[7]
retention = tonumber(ARGV[4])
local special_key = base .. 'sp:' .. worker
local keep = -1
if retention >= 0 then
  keep = now + retention
end
local requeued = false
local acks = {} -- {seq, kind, at, data, enc}
local seqs = {}
local i, n = 8, #ARGV
while i <= n do
  local a = { ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3] }
  if a[2] == 'W' then
    a[5] = ARGV[i + 4]
    i = i + 5
  else
    i = i + 4
  end
  acks[#acks + 1] = a
  seqs[#seqs + 1] = a[1]
end
if #seqs == 0 then
  return { 0, 0 }
end

-- 1. Read and check (no writes): which acks count, and what each task's
-- record and state say.
local owned = redis.call('SMISMEMBER', KEYS[1], unpack(seqs))
local special = {}
if redis.call('EXISTS', special_key) == 1 then
  special = redis.call('SMISMEMBER', special_key, unpack(seqs))
end
local states = redis.call('HMGET', S, unpack(seqs))
local records = {} -- k -> decoded record of a special task
local problems = {} -- k -> why its outcome cannot be recorded
local stale = {} -- in the in-flight set but no longer running
for k, seq in ipairs(seqs) do
  local v = states[k]
  if owned[k] == 1 and v and string.sub(v, 1, 1) ~= 'r' then
    -- In the in-flight set but no longer running (cancelled while its
    -- worker was not registered): forget it below.
    stale[#stale + 1] = seq
    owned[k] = 0
  end
  if owned[k] == 1 then
    if v and not parse_state(v) then
      problems[k] = 'its state `' .. string.sub(v, 1, 40) .. '` is malformed'
    end
    if special[k] == 1 then
      local rec = redis.call('HGET', T, seq)
      if rec then
        local t, problem = try_record(rec)
        records[k] = t
        problems[k] = problems[k] or problem
      end
    end
  end
end

-- 2. Write: nothing below raises.
local finished = {}
local specials = {}
local writes = {} -- seq, state value, ... of plain tasks
local errors = {} -- seq, error, ...
local done = {}
local expiring = {}
local added = 0
local tail = '|' .. now .. '|'
if #stale > 0 then
  redis.call('SREM', KEYS[1], unpack(stale))
end
for k, seq in ipairs(seqs) do
  local kind, at, data, enc = acks[k][2], acks[k][3], acks[k][4], acks[k][5]
  local v = states[k]
  local t = records[k]
  if owned[k] == 1 and special[k] == 1 and redis.call('HGET', S, seq) ~= (v or false) then
    -- Changed by this very call: a sibling step's failure above cancelled it.
    owned[k] = 0
  end
  if owned[k] == 1 then
    finished[#finished + 1] = seq
    if special[k] == 1 then
      specials[#specials + 1] = seq
    end
    local value
    if problems[k] then
      kind, data = 'X', 'read the stored data of this task (queue `' .. ARGV[6] .. '`): ' .. problems[k] ..
        '; it went dead instead of being recorded as ' .. ({ D = 'done', W = 'done', R = 'retried',
        X = 'dead', S = 'snoozed' })[kind]
    end
    if kind == 'D' or kind == 'W' then
      local live = string.sub(v or 'r1|', 2)
      if kind == 'W' then
        -- The output is kept once, in the run.
        value = 'd' .. live .. '|' .. now
      else
        value = 'd' .. live .. tail .. data
      end
      count('done', 1)
      done[#done + 1] = seq
      if keep >= 0 then
        local keep_until = math.max(keep, release_unique(t, seq, now))
        if keep_until == keep then
          expiring[#expiring + 1] = seq
        else
          redis.call('ZADD', base .. 'x', keep_until, seq)
        end
      else
        release_unique(t, seq, now)
      end
    elseif kind == 'R' then
      local _, attempt = parse_state(v)
      value = 'y' .. attempt .. '|' .. at
      errors[#errors + 1] = seq
      errors[#errors + 1] = data
      make_delayed(job, at, seq)
      count('retry', 1)
      requeued = true
    elseif kind == 'S' then
      local _, attempt = parse_state(v)
      value = 'p' .. math.max(attempt - 1, 0) .. '|' .. at
      make_delayed(job, at, seq)
      count('pending', 1)
      requeued = true
    else
      value = finish_value('x', v, now)
      errors[#errors + 1] = seq
      errors[#errors + 1] = data
      redis.call('ZADD', KEYS[4], seq, seq)
      count('dead', 1)
    end
    if special[k] == 1 then
      redis.call('HSET', S, seq, value)
      if t and t.run then
        if kind == 'W' and enc then
          added = added + step_done(t.run, t.step, enc, now)
        elseif kind == 'D' or kind == 'W' then
          fail_run(t.run, t.step, 'its output reached Redis without its encoded form', now)
        elseif kind == 'X' then
          fail_run(t.run, t.step, data, now)
        end
      end
      if kind == 'X' then
        release_unique(t, seq, now)
      end
    else
      writes[#writes + 1] = seq
      writes[#writes + 1] = value
    end
  else
    -- Cancelled meanwhile (or rescued): forget it.
    redis.call('SREM', base .. 'cx:' .. worker, seq)
    if special[k] == 1 then
      specials[#specials + 1] = seq
    end
  end
end
count('running', -#finished)
chunked('HSET', S, writes)
if #finished > 0 then
  redis.call('SREM', KEYS[1], unpack(finished))
end
chunked('HSET', E, errors)
if #specials > 0 then
  redis.call('SREM', special_key, unpack(specials))
end
if #done > 0 then
  mark_done(done, '1')
end
if #expiring > 0 then
  -- One entry for the tasks that expire together (see purge.lua).
  redis.call('ZADD', base .. 'x', keep, table.concat(expiring, ','))
end
flush_counts()
if requeued or added > 0 then
  redis.call('PUBLISH', ARGV[5], ARGV[6])
end
return { #finished, added }
