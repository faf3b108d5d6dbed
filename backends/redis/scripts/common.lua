-- Shared helpers, prepended to every script that changes tasks.
--
-- ARGV[1] is always the queue's key base, `<prefix>{<queue>}:`; every key a
-- script touches starts with it, so all of them live in the queue's hash slot.
local base = ARGV[1]

local function tkey(seq)
  return base .. 't:' .. seq
end

-- Member of a ready set: run_at (13 digits) then seq (12 digits), so that
-- equal priorities (equal scores) pop by earliest run_at, then lowest seq.
local function ready_member(run_at, seq)
  return string.format('%013d%012d', tonumber(run_at), tonumber(seq))
end

local function make_ready(job, priority, run_at, seq)
  redis.call('ZADD', base .. 'r:' .. job, -tonumber(priority), ready_member(run_at, seq))
end

local function make_delayed(job, run_at, seq)
  redis.call('ZADD', base .. 'd:' .. job, run_at, seq)
end

-- Per-state count deltas, written once at the end of a script.
local tally = {}
local function count(state, delta)
  tally[state] = (tally[state] or 0) + delta
end
local function flush_counts()
  for state, delta in pairs(tally) do
    if delta ~= 0 then
      redis.call('HINCRBY', base .. 'n', state, delta)
    end
  end
end

-- A task reached a final state: free its unique key, or keep it until the
-- end of its window. Returns when the window ends (0 without one).
local function release_unique(tk, seq, now)
  local u, uf, c, j = unpack(redis.call('HMGET', tk, 'u', 'uf', 'c', 'j'))
  if not u then
    return 0
  end
  local uk = base .. 'u:' .. j .. ':' .. u
  if redis.call('GET', uk) ~= tostring(seq) then
    return 0
  end
  local window_end = 0
  if uf and tonumber(uf) > 0 then
    window_end = tonumber(c) + tonumber(uf)
  end
  if window_end > now then
    redis.call('PEXPIREAT', uk, window_end)
    return window_end
  end
  redis.call('DEL', uk)
  return 0
end

-- Removes the done-index entries of tasks whose hash has expired, for up to
-- `k` entries of `x`: a member of `x` lists the seqs (comma separated) of
-- tasks that expire together, scored by when.
local function prune_done(k, now)
  local entries = redis.call('ZRANGEBYSCORE', base .. 'x', '-inf', now, 'LIMIT', 0, k)
  if #entries == 0 then
    return
  end
  local gone = 0
  for _, entry in ipairs(entries) do
    local ids = {}
    for id in string.gmatch(entry, '[^,]+') do
      ids[#ids + 1] = id
    end
    for j = 1, #ids, 1000 do
      gone = gone + redis.call('ZREM', base .. 'done', unpack(ids, j, math.min(j + 999, #ids)))
    end
  end
  redis.call('ZREM', base .. 'x', unpack(entries))
  count('done', -gone)
end

local function is_live(state)
  return state == 'pending' or state == 'running' or state == 'retry'
end

-- Cancels live task `seq` (its fields `state`, `job`, `run_at`, `w` read by
-- the caller); a running one is reported to its worker through `cx:<worker>`.
local function cancel_task(seq, state, job, run_at, w, now)
  local tk = tkey(seq)
  if state == 'running' then
    -- The worker learns it from `cancelled_tasks` and fires the run's token.
    redis.call('SREM', base .. 'if:' .. w, seq)
    redis.call('SADD', base .. 'cx:' .. w, seq)
    redis.call('PEXPIRE', base .. 'cx:' .. w, 86400000)
  else
    redis.call('ZREM', base .. 'r:' .. job, ready_member(run_at, seq))
    redis.call('ZREM', base .. 'd:' .. job, seq)
  end
  redis.call('HSET', tk, 's', 'cancelled', 'f', now)
  redis.call('ZADD', base .. 'cancelled', seq, seq)
  release_unique(tk, seq, now)
  count(state, -1)
  count('cancelled', 1)
end

-- Workflows. A run is the hash `wr:<run>`: `w` workflow, `s` state, `c`
-- created, `e` error, `n` steps, `nd` steps done, and per step i: `nm<i>`
-- name, `a<i>` the steps it takes (comma separated), `x<i>` the steps that
-- take it, `m<i>` max attempts, `p<i>` priority, `f<i>` the start of its
-- failure message, `k<i>.<j>` the parts of its payload around its encoded
-- inputs, `t<i>` its task once enqueued, `o<i>` its output once done (encoded
-- as a payload element). A step's task carries `wr` (run) and `ws` (step).

local function split(list)
  local out = {}
  for item in string.gmatch(list or '', '[^,]+') do
    out[#out + 1] = item
  end
  return out
end

-- A new ready task; returns its seq.
local function new_task(job, payload, priority, max_attempts, now, run, step)
  local seq = redis.call('INCR', base .. 'seq')
  redis.call('HSET', tkey(seq), 'j', job, 's', 'pending', 'a', 0, 'm', max_attempts, 'pr', priority,
    'r', now, 'c', now, 'p', payload, 'wr', run, 'ws', step)
  make_ready(job, priority, now, seq)
  count('pending', 1)
  return seq
end

-- Step `step` of run `run` went dead with `err`: the run fails, its other
-- live steps are cancelled. The run is kept until `keep_until`.
local function fail_run(run, step, err, now, keep_until)
  local rk = base .. 'wr:' .. run
  local state, n, prefix = unpack(redis.call('HMGET', rk, 's', 'n', 'f' .. step))
  if state ~= 'running' then
    return
  end
  redis.call('HSET', rk, 's', 'failed', 'e', (prefix or '') .. err, 'fin', now)
  redis.call('PEXPIREAT', rk, keep_until)
  for i = 0, tonumber(n) - 1 do
    if i ~= tonumber(step) then
      local t = redis.call('HGET', rk, 't' .. i)
      if t then
        local s, j, r, w = unpack(redis.call('HMGET', tkey(t), 's', 'j', 'r', 'w'))
        if s and is_live(s) then
          cancel_task(t, s, j, r, w, now)
        end
      end
    end
  end
end

-- Step `step` of run `run` is done with `enc` (its output encoded as a
-- payload element): store it, enqueue the steps whose inputs are now all
-- there, finish the run once every step is done. Returns how many tasks it
-- enqueued.
local function step_done(run, step, enc, now, keep_until)
  local rk = base .. 'wr:' .. run
  local state, job, n, after = unpack(redis.call('HMGET', rk, 's', 'w', 'n', 'x' .. step))
  if state ~= 'running' then
    return 0
  end
  redis.call('HSET', rk, 'o' .. step, enc)
  local created = 0
  for _, d in ipairs(split(after)) do
    local deps_s, t, prio, max = unpack(redis.call('HMGET', rk, 'a' .. d, 't' .. d, 'p' .. d, 'm' .. d))
    if not t then
      local deps = split(deps_s)
      local fields = {}
      for _, dep in ipairs(deps) do
        fields[#fields + 1] = 'o' .. dep
      end
      local outs = redis.call('HMGET', rk, unpack(fields))
      local ready = true
      for i = 1, #deps do
        if not outs[i] then
          ready = false
        end
      end
      if ready then
        local names = {}
        for j = 0, #deps do
          names[#names + 1] = 'k' .. d .. '.' .. j
        end
        local parts = redis.call('HMGET', rk, unpack(names))
        local payload = { parts[1] }
        for i = 1, #deps do
          payload[#payload + 1] = outs[i]
          payload[#payload + 1] = parts[i + 1]
        end
        local seq = new_task(job, table.concat(payload), prio, max, now, run, d)
        redis.call('HSET', rk, 't' .. d, seq)
        created = created + 1
      end
    end
  end
  if redis.call('HINCRBY', rk, 'nd', 1) >= tonumber(n) then
    redis.call('HSET', rk, 's', 'done', 'fin', now)
    redis.call('PEXPIREAT', rk, keep_until)
  end
  return created
end
