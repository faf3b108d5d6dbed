-- Claims up to `max` due tasks of one job for one worker.
-- KEYS[1] ready set, KEYS[2] delayed set, KEYS[3] the worker's in-flight set,
-- KEYS[4] counts, KEYS[5] the worker's claims: a hash of `floor`, the lowest
-- claim token the worker still waits for an answer to, `top`, the highest
-- token that ran, `rescued` once a rescue took the worker's tasks, and, per
-- claim that handed out tasks, its token → its seqs (comma separated),
-- until the worker confirms it received them, KEYS[6] the queue's `paused`
-- flag: while it exists, the claim takes no new task (it still hands out
-- again the tasks of its lost claims, which are running for it already).
-- Tasks whose ack needs their record (workflow steps, unique keys) are also
-- put in the worker's `sp:<worker>` set; the claimed tasks' progress
-- (`g`) is deleted: each attempt starts from none.
-- ARGV: base, now, max, worker, move batch, claim token, floor, L, then L
-- tokens of this worker's claims whose replies were lost, then the tokens
-- of claims whose replies arrived (their entries are dropped).
-- Returns {next_due or -1, then 4 per task: seq, attempt (false when its
-- state value is malformed), run_at if it differs from the record's (else
-- false; the malformed state value when the attempt is false), record};
-- next_due is -1 for a paused queue. The
-- backend reads the records; a task whose record or state it cannot read
-- goes dead right after (`unreadable.lua`) instead of running.
local now, max, worker = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local move_batch, token, floor = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local lost_n = tonumber(ARGV[8])
local claims = KEYS[5]
local out = { -1 }

-- 0. A claim below the floor was given up by its worker (its call failed,
-- and a later claim said so; or the worker was released since): it may run
-- late, queued behind a connection that broke, and must then take nothing,
-- or its tasks would stay running for a worker that will never hear of
-- them. So must a claim of a worker that was rescued and has not beaten
-- since (it is dead, or has yet to learn it was taken for dead).
local book = redis.call('HMGET', claims, 'floor', 'top', 'rescued')
local stored_floor, top = tonumber(book[1] or '') or 0, tonumber(book[2] or '') or 0
if token < stored_floor then
  return out
end
if book[3] and not redis.call('ZSCORE', base .. 'w', worker) then
  return out
end

-- 1. Redeliver the claims whose reply never reached the worker: their
-- tasks that are still running for it.
local claimed = {}
local drop = {}
local again, seen = {}, {}
for i = 9, 8 + lost_n do
  local entry = redis.call('HGET', claims, ARGV[i])
  if entry then
    drop[#drop + 1] = ARGV[i]
    for seq in string.gmatch(entry, '%d+') do
      if not seen[seq] then
        seen[seq] = true
        again[#again + 1] = seq
      end
    end
  end
end
for i = 9 + lost_n, #ARGV do
  drop[#drop + 1] = ARGV[i]
end
if #again > 0 then
  local recs = hmget(T, again)
  local states = hmget(S, again)
  for k, seq in ipairs(again) do
    local state, attempt, run_at = parse_state(states[k])
    if state == 'running' and recs[k] and redis.call('SISMEMBER', KEYS[3], seq) == 1 then
      local o = #out
      out[o + 1], out[o + 2], out[o + 3], out[o + 4] = seq, attempt, run_at or false, recs[k]
      claimed[#claimed + 1] = seq
    end
  end
end
local redelivered = #claimed
-- A paused queue hands out nothing new (one lookup of a small key).
local paused = redis.call('EXISTS', KEYS[6]) == 1
-- Everything above only read: the writes start here.
chunked('HDEL', claims, drop)

-- 2. Move due delayed tasks to the ready set, a bounded batch per claim.
local due = {}
if not paused then
  due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, move_batch)
end
if #due > 0 then
  local recs = hmget(T, due)
  local states = hmget(S, due)
  local members = {}
  for k, seq in ipairs(due) do
    if recs[k] then
      local _, _, run_at = parse_state(states[k])
      local t = try_record(recs[k])
      local priority, at = 0, now
      if t then
        priority, at = t.priority, run_at or t.run_at
      end
      -- An unreadable record is ready now, so that a claim hands it to the
      -- backend, which sends it to dead with the read error.
      members[#members + 1] = -priority
      members[#members + 1] = ready_member(at, seq)
    end
  end
  chunked('ZADD', KEYS[1], members)
  redis.call('ZREM', KEYS[2], unpack(due))
end

-- 3. Pop the best ready tasks.
local want = max - redelivered
if paused then
  want = 0
end
if want > 0 then
  -- ZRANGE then ZREMRANGEBYRANK rather than ZPOPMIN, whose reply carries
  -- every score formatted as a string.
  local popped = redis.call('ZRANGE', KEYS[1], 0, want - 1)
  if #popped > 0 then
    redis.call('ZREMRANGEBYRANK', KEYS[1], 0, #popped - 1)
    local seqs = {}
    for i = 1, #popped do
      -- A member this version did not write names no task: dropped.
      seqs[#seqs + 1] = seq_of(popped[i])
    end
    local recs = hmget(T, seqs)
    local states = hmget(S, seqs)
    local fresh = 'r1|'
    local writes = {}
    local special = {}
    local pending = 0
    for k, seq in ipairs(seqs) do
      local rec, v = recs[k], states[k]
      local attempt, run_at = nil, nil -- attempt stays nil for a task not to run
      if not rec then
        -- Removed meanwhile: nothing to run.
      elseif not v then
        -- Never claimed: pending, attempt 0, run_at as enqueued.
        pending = pending + 1
        attempt = 1
        writes[#writes + 1] = seq
        writes[#writes + 1] = fresh
      else
        local state
        state, attempt, run_at = parse_state(v)
        if state == 'pending' or state == 'retry' then
          count(state, -1)
          attempt = attempt + 1
          writes[#writes + 1] = seq
          writes[#writes + 1] = 'r' .. attempt .. '|' .. (run_at or '')
        elseif state == nil then
          -- A malformed state value on a waiting task: handed to the backend
          -- as unreadable (it goes dead with the read error, never runs).
          count(counted_as(v), -1)
          writes[#writes + 1] = seq
          writes[#writes + 1] = 'r0|'
          attempt, run_at = false, v
        else
          attempt = nil -- not waiting (a stale member)
        end
      end
      if attempt ~= nil then
        local o = #out
        out[o + 1], out[o + 2], out[o + 3], out[o + 4] = seq, attempt, run_at or false, rec
        claimed[#claimed + 1] = seq
        local flags = string.byte(rec, 1)
        if not flags or flags % SPECIAL ~= 0 then
          -- A workflow step or a task with a unique key (or a record too
          -- short to say): its ack reads its record. A trace context alone
          -- does not make a task special.
          special[#special + 1] = seq
        end
      end
    end
    count('pending', -pending)
    count('running', (#claimed - redelivered))
    chunked('HSET', S, writes)
    if #claimed > redelivered then
      local fresh_seqs = from(claimed, redelivered + 1)
      chunked('SADD', KEYS[3], fresh_seqs)
      -- A new attempt reports its own progress.
      chunked('HDEL', G, fresh_seqs)
    end
    chunked('SADD', base .. 'sp:' .. worker, special)
  end
end

-- 4. Record this claim, so that its tasks can be redelivered if the reply
-- is lost, and the worker's floor.
if #claimed > 0 then
  redis.call('HSET', claims, ARGV[6], table.concat(claimed, ','))
end
local marks = {}
if floor > stored_floor then
  marks[#marks + 1], marks[#marks + 2] = 'floor', ARGV[7]
end
if token > top then
  marks[#marks + 1], marks[#marks + 2] = 'top', ARGV[6]
end
if #marks > 0 then
  redis.call('HSET', claims, unpack(marks))
end
if book[3] then
  redis.call('HDEL', claims, 'rescued')
end
redis.call('PEXPIRE', claims, 86400000)
if #claimed == 0 and not paused then
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if first[2] then
    out[1] = tonumber(first[2])
  end
end
flush_counts()
return out
