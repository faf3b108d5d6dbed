-- Records the outcomes of finished runs of one worker.
-- KEYS[1] the worker's in-flight set, KEYS[2] counts, KEYS[3] blocks of the
-- done bitmaps, KEYS[4] dead index.
-- ARGV: base, now, worker, retention in ms, wake channel, queue name,
-- prune batch, the worker's job, then 4 per ack: seq, kind (D done,
-- R retry, X dead, S snooze, W done for a workflow step: then a 5th, the
-- output encoded as a payload element), at, data (result or error).
-- A task is running for this worker while it is in the worker's in-flight
-- set; acks for other tasks are ignored. Only the tasks in the worker's
-- `sp:` set (workflow steps, unique keys) have their record read; their
-- state is written at once (a workflow step's ack may read other steps'),
-- the others' with one HSET per call.
-- Returns {finished, tasks enqueued by workflow steps}.
local now, worker, retention, job = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]), ARGV[8]
local special_key = base .. 'sp:' .. worker
local keep = now + retention
local requeued = false
local at_arg = {} -- where each ack starts in ARGV
local seqs = {}
local i, n = 9, #ARGV
while i <= n do
  seqs[#seqs + 1] = ARGV[i]
  at_arg[#at_arg + 1] = i
  if ARGV[i + 1] == 'W' then
    i = i + 5
  else
    i = i + 4
  end
end
if #seqs == 0 then
  return { 0, 0 }
end
local owned = redis.call('SMISMEMBER', KEYS[1], unpack(seqs))
local special = {}
if redis.call('EXISTS', special_key) == 1 then
  special = redis.call('SMISMEMBER', special_key, unpack(seqs))
end
local states = redis.call('HMGET', S, unpack(seqs))
local finished = {}
local specials = {}
local writes = {} -- seq, state value, ... of plain tasks
local errors = {} -- seq, error, ...
local done = {}
local expiring = {}
local added = 0
local ndone = 0
local tail = '|' .. now .. '|'
for k, seq in ipairs(seqs) do
  local j = at_arg[k]
  local kind, at, data, enc = ARGV[j + 1], ARGV[j + 2], ARGV[j + 3], nil
  if kind == 'W' then
    kind, enc = 'D', ARGV[j + 4]
  end
  local v = states[k]
  if owned[k] == 1 and v and string.sub(v, 1, 1) ~= 'r' then
    -- In the in-flight set but no longer running (cancelled while its
    -- worker was not registered): forget it below.
    redis.call('SREM', KEYS[1], seq)
    owned[k] = 0
  end
  if owned[k] == 1 then
    finished[#finished + 1] = seq
    v = v or 'r1|'
    local t = nil
    if special[k] == 1 then
      specials[#specials + 1] = seq
      local rec = redis.call('HGET', T, seq)
      if rec then
        t = record(rec)
      end
    end
    local value
    if kind == 'D' then
      if v == 'r1|' then
        value = 'd1|' .. tail .. data
      else
        value = 'd' .. string.sub(v, 2) .. tail .. data
      end
      ndone = ndone + 1
      done[ndone] = seq
      local keep_until = keep
      if t then
        keep_until = math.max(keep, release_unique(t, seq, now))
      end
      if keep_until == keep then
        expiring[#expiring + 1] = seq
      else
        redis.call('ZADD', base .. 'x', keep_until, seq)
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
    if t then
      redis.call('HSET', S, seq, value)
      if kind == 'D' and t.run then
        if enc then
          added = added + step_done(t.run, t.step, enc, now, keep)
        else
          fail_run(t.run, t.step, 'its output reached Redis without its encoded form', now, keep)
        end
      elseif kind == 'X' then
        release_unique(t, seq, now)
        if t.run then
          fail_run(t.run, t.step, data, now, keep)
        end
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
count('done', ndone)
chunked('HSET', S, writes)
chunked('HSET', E, errors)
if #finished > 0 then
  redis.call('SREM', KEYS[1], unpack(finished))
end
if #specials > 0 then
  redis.call('SREM', special_key, unpack(specials))
end
if ndone > 0 then
  mark_done(done, '1')
end
if #expiring > 0 then
  -- One entry for the tasks that expire together (see prune_done).
  redis.call('ZADD', base .. 'x', keep, table.concat(expiring, ','))
end
prune_done(tonumber(ARGV[7]), now)
flush_counts()
if requeued or added > 0 then
  redis.call('PUBLISH', ARGV[5], ARGV[6])
end
return { #finished, added }
