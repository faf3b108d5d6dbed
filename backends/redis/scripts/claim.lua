-- Claims up to `max` due tasks of one job for one worker.
-- KEYS[1] ready set, KEYS[2] delayed set, KEYS[3] the worker's in-flight set,
-- KEYS[4] counts, KEYS[5] the worker's last-claim record (the claim's token,
-- then its seqs, comma separated). Tasks whose ack needs their record
-- (workflow steps, unique keys) are also put in the worker's `sp:<worker>`
-- set.
-- ARGV: base, now, max, worker, move batch, claim token, then the tokens of
-- this worker's claims whose replies were lost.
-- Returns {next_due or -1, then 4 per task: seq, attempt, run_at if it
-- differs from the record's (else nil), record}. The backend reads the
-- records; a task whose record it cannot read goes dead right after
-- (`unreadable.lua`) instead of running.
local now, max, worker = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local move_batch, token = tonumber(ARGV[5]), ARGV[6]
local out = { -1 }
local claimed = {}

-- 1. Redeliver a claim whose reply never reached the worker.
if #ARGV > 6 then
  local record_list = split(redis.call('GET', KEYS[5]))
  local lost = false
  for i = 7, #ARGV do
    if record_list[1] == ARGV[i] then
      lost = true
    end
  end
  if lost and #record_list > 1 then
    local seqs = from(record_list, 2)
    local recs = hmget(T, seqs)
    local states = hmget(S, seqs)
    for k, seq in ipairs(seqs) do
      local state, attempt, run_at = parse_state(states[k])
      if state == 'running' and recs[k] and redis.call('SISMEMBER', KEYS[3], seq) == 1 then
        local o = #out
        out[o + 1], out[o + 2], out[o + 3], out[o + 4] = seq, attempt, run_at or false, recs[k]
        claimed[#claimed + 1] = seq
      end
    end
  end
end
local redelivered = #claimed

-- 2. Move due delayed tasks to the ready set, a bounded batch per claim.
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, move_batch)
if #due > 0 then
  local recs = hmget(T, due)
  local states = hmget(S, due)
  local members = {}
  for k, seq in ipairs(due) do
    if recs[k] then
      local _, _, run_at = parse_state(states[k])
      local ok, _, priority, _, _, enqueued_at = pcall(struct.unpack, '>BhI4dd', recs[k])
      if not ok or enqueued_at ~= enqueued_at or math.abs(enqueued_at) >= 1e15 then
        -- An unreadable record: ready now, so that a claim hands it to the
        -- backend, which sends it to dead with the read error.
        priority, enqueued_at = 0, now
      end
      members[#members + 1] = -priority
      members[#members + 1] = ready_member(run_at or enqueued_at, seq)
    end
  end
  chunked('ZADD', KEYS[1], members)
  redis.call('ZREM', KEYS[2], unpack(due))
end

-- 3. Pop the best ready tasks.
local want = max - redelivered
if want > 0 then
  -- ZRANGE then ZREMRANGEBYRANK rather than ZPOPMIN, whose reply carries
  -- every score formatted as a string.
  local popped = redis.call('ZRANGE', KEYS[1], 0, want - 1)
  if #popped > 0 then
    redis.call('ZREMRANGEBYRANK', KEYS[1], 0, #popped - 1)
    local seqs = {}
    for i = 1, #popped do
      seqs[i] = seq_of(popped[i])
    end
    local recs = hmget(T, seqs)
    local states = hmget(S, seqs)
    local fresh = 'r1|'
    local writes = {}
    local special = {}
    local pending = 0
    for k, seq in ipairs(seqs) do
      local rec, v = recs[k], states[k]
      local attempt, run_at = nil, nil -- stays nil for a task not to run
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
        else
          attempt = nil -- not waiting (a stale member)
        end
      end
      if attempt then
        local o = #out
        out[o + 1], out[o + 2], out[o + 3], out[o + 4] = seq, attempt, run_at or false, rec
        claimed[#claimed + 1] = seq
        if string.byte(rec, 1) ~= 0 then
          -- A workflow step or a task with a unique key: its ack reads its record.
          special[#special + 1] = seq
        end
      end
    end
    count('pending', -pending)
    count('running', (#claimed - redelivered))
    chunked('HSET', S, writes)
    if #claimed > redelivered then
      chunked('SADD', KEYS[3], from(claimed, redelivered + 1))
    end
    chunked('SADD', base .. 'sp:' .. worker, special)
  end
end

-- 4. Record this claim, so that its tasks can be redelivered if the reply is lost.
if #claimed > 0 then
  redis.call('SET', KEYS[5], token .. ',' .. table.concat(claimed, ','), 'PX', 86400000)
else
  redis.call('DEL', KEYS[5])
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if first[2] then
    out[1] = tonumber(first[2])
  end
end
flush_counts()
return out
