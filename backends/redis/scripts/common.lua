-- Shared helpers, prepended to every script that changes tasks.
--
-- ARGV[1] is always the queue's key base, `<prefix>{<queue>}:`; every key a
-- script touches starts with it, so all of them live in the queue's hash slot.
local base = ARGV[1]

-- A task is one field (its seq) in each of these hashes:
--   `t` its record, written once at enqueue (see `record` below);
--   `s` its state once it was first claimed (absent: pending, attempt 0,
--       run_at as enqueued), see `parse_state`;
--   `e` its last error, if any.
local T, S, E = base .. 't', base .. 's', base .. 'e'

-- A record: flags (1 unique key, 2 workflow step), priority, max attempts,
-- created (ms), run_at as enqueued (ms), job; with flag 1 the unique key and
-- its window (ms); with flag 2 the workflow run and step; then the payload.
local RECORD = '>BhI4ddHc0'

local function record(rec)
  local flags, priority, max, created, run_at, job, pos = struct.unpack(RECORD, rec)
  local t = { priority = priority, max = max, created = created, run_at = run_at, job = job }
  if flags % 2 == 1 then
    t.u, t.uf, pos = struct.unpack('>I4c0d', rec, pos)
  end
  if flags % 4 >= 2 then
    t.run, t.step, pos = struct.unpack('>dH', rec, pos)
  end
  t.pos = pos
  return t
end

-- A state value: a letter for the state, the attempt, `|`, run_at when it
-- differs from the record's; for a finished task then `|` and when it
-- finished, and for a done one `|` and its output.
local NAMES = { p = 'pending', r = 'running', y = 'retry', d = 'done', x = 'dead', c = 'cancelled' }

-- state, attempt, run_at (nil: as enqueued), finished of a state value.
local function parse_state(v)
  if not v then
    return 'pending', 0, nil, nil
  end
  local l, a, r, f = string.match(v, '^(%a)(%d+)|(%-?%d*)|?(%d*)')
  return NAMES[l], tonumber(a), tonumber(r), tonumber(f)
end

-- `v` (a live task's state value, nil for a never claimed one) finished in
-- state `letter` at `now`.
local function finish_value(letter, v, now)
  if v then
    return letter .. string.sub(v, 2) .. '|' .. now
  end
  return letter .. '0||' .. now
end

-- Member of a ready set: run_at (13 digits) then seq (12 digits), so that
-- equal priorities (equal scores) pop by earliest run_at, then lowest seq.
local function ready_member(run_at, seq)
  return string.format('%013d%012d', tonumber(run_at), tonumber(seq))
end

-- The seq (a string, without leading zeros) of a ready-set member.
local function seq_of(member)
  return string.match(member, '^0*(%d+)', 14)
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

-- Runs `command key items...` in chunks that `unpack` can take.
local function chunked(command, key, items)
  for j = 1, #items, 2000 do
    redis.call(command, key, unpack(items, j, math.min(j + 1999, #items)))
  end
end

-- `HMGET key items...` in chunks that `unpack` can take; the values in order.
local function hmget(key, items)
  if #items <= 2000 then
    return redis.call('HMGET', key, unpack(items))
  end
  local values = {}
  for j = 1, #items, 2000 do
    local part = redis.call('HMGET', key, unpack(items, j, math.min(j + 1999, #items)))
    for k = 1, #part do
      values[j + k - 1] = part[k]
    end
  end
  return values
end

-- The items of `list` from index `from` on.
local function from(list, first)
  local out = {}
  for j = first, #list do
    out[#out + 1] = list[j]
  end
  return out
end

-- A task (its record `t`) reached a final state: free its unique key, or
-- keep it until the end of its window. Returns when the window ends (0
-- without one).
local function release_unique(t, seq, now)
  if not t.u then
    return 0
  end
  local uk = base .. 'u:' .. t.job .. ':' .. t.u
  if redis.call('GET', uk) ~= tostring(seq) then
    return 0
  end
  local window_end = 0
  if t.uf > 0 then
    window_end = t.created + t.uf
  end
  if window_end > now then
    redis.call('PEXPIREAT', uk, window_end)
    return window_end
  end
  redis.call('DEL', uk)
  return 0
end

-- Done tasks are bits of bitmaps of 100,000 seqs each: bit `seq % 100000`
-- of `done:<seq div 100000>`; `db` is the sorted set of the blocks that
-- have any (scored by block). One BITFIELD per block and call sets them.
local BLOCK = 100000

-- The block and the bit (strings) of a seq (a string without leading zeros).
local function done_bit(seq)
  local b, o = string.match(seq, '^(%d-)(%d%d?%d?%d?%d?)$')
  if b == '' then
    b = '0'
  end
  return b, string.match(o, '^0*(%d.-)$')
end

-- Sets (value '1') or clears (value '0') the done bits of `seqs`. Returns
-- how many bits changed when clearing (0 when setting).
local function mark_done(seqs, value)
  local ops, sizes, blocks = {}, {}, {}
  for _, seq in ipairs(seqs) do
    local b, o = done_bit(seq)
    local list = ops[b]
    if not list then
      list = {}
      ops[b], sizes[b] = list, 0
      blocks[#blocks + 1] = b
    end
    local n = sizes[b]
    list[n + 1], list[n + 2], list[n + 3], list[n + 4] = 'SET', 'u1', o, value
    sizes[b] = n + 4
  end
  local changed = 0
  for _, b in ipairs(blocks) do
    local key, list = base .. 'done:' .. b, ops[b]
    for j = 1, #list, 2000 do
      local old = redis.call('BITFIELD', key, unpack(list, j, math.min(j + 1999, #list)))
      if value == '0' then
        for _, bit in ipairs(old) do
          changed = changed + bit
        end
      end
    end
    if value == '1' then
      redis.call('ZADD', base .. 'db', b, b)
    elseif redis.call('BITCOUNT', key) == 0 then
      redis.call('DEL', key)
      redis.call('ZREM', base .. 'db', b)
    end
  end
  return changed
end

-- Removes the done tasks whose retention has passed, for up to `k` entries
-- of `x`: a member of `x` lists the seqs (comma separated) of tasks that
-- expire together, scored by when. Their fields leave `t`, `s` and `e`, and
-- their done bits are cleared.
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
    gone = gone + mark_done(ids, '0')
    for j = 1, #ids, 1000 do
      local last = math.min(j + 999, #ids)
      redis.call('HDEL', T, unpack(ids, j, last))
      redis.call('HDEL', S, unpack(ids, j, last))
      redis.call('HDEL', E, unpack(ids, j, last))
    end
  end
  redis.call('ZREM', base .. 'x', unpack(entries))
  count('done', -gone)
end

-- Running task `seq` (state value `v`) goes dead with `err` without its
-- record being read (the record may be unreadable).
local function bury_running(seq, v, err, now)
  redis.call('HSET', S, seq, finish_value('x', v, now))
  redis.call('HSET', E, seq, err)
  redis.call('ZADD', base .. 'dead', seq, seq)
  count('running', -1)
  count('dead', 1)
end

local function is_live(state)
  return state == 'pending' or state == 'running' or state == 'retry'
end

-- The worker running task `seq`: the one whose in-flight set holds it.
local function worker_of(seq)
  for _, w in ipairs(redis.call('ZRANGE', base .. 'w', 0, -1)) do
    if redis.call('SISMEMBER', base .. 'if:' .. w, seq) == 1 then
      return w
    end
  end
  return nil
end

-- Cancels live task `seq` (its record `t`, state value `v`); a running one
-- is reported to its worker through `cx:<worker>`.
local function cancel_task(seq, t, v, now)
  local state, _, run_at = parse_state(v)
  if state == 'running' then
    -- The worker learns it from `cancelled_tasks` and fires the run's token.
    local w = worker_of(seq)
    if w then
      redis.call('SREM', base .. 'if:' .. w, seq)
      redis.call('SADD', base .. 'cx:' .. w, seq)
      redis.call('PEXPIRE', base .. 'cx:' .. w, 86400000)
    end
  else
    redis.call('ZREM', base .. 'r:' .. t.job, ready_member(run_at or t.run_at, seq))
    redis.call('ZREM', base .. 'd:' .. t.job, seq)
  end
  redis.call('HSET', S, seq, finish_value('c', v, now))
  redis.call('ZADD', base .. 'cancelled', seq, seq)
  release_unique(t, seq, now)
  count(state, -1)
  count('cancelled', 1)
end

-- Workflows. A run is the hash `wr:<run>`: `w` workflow, `s` state, `c`
-- created, `e` error, `fin` finished, `n` steps, `sk` the sink steps (comma
-- separated), and per step i: `nm<i>` name, `a<i>` the steps it takes
-- (comma separated, in argument order), `x<i>` the steps that take it,
-- `m<i>` max attempts, `p<i>` priority, `f<i>` the start of its failure
-- message, `k<i>.<j>` the parts of its payload around its encoded inputs,
-- `t<i>` its task once enqueued, `o<i>` its output once done (encoded as a
-- payload element). The graph's tables (`a`, `x`, `sk`, `f`) come from the
-- runtime's planner, and the functions below advance a run as it does. A
-- step's task record carries its run and step.

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
  local rec = struct.pack(RECORD .. 'dH', 2, tonumber(priority), tonumber(max_attempts), now, now, #job, job,
    tonumber(run), tonumber(step))
  redis.call('HSET', T, seq, rec .. payload)
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
        local rec = redis.call('HGET', T, t)
        local v = redis.call('HGET', S, t)
        if rec and is_live(parse_state(v)) then
          cancel_task(t, record(rec), v, now)
        end
      end
    end
  end
end

-- Step `step` of run `run` is done with `enc` (its output encoded as a
-- payload element), as the planner has it: nothing changes for a run that
-- is no longer running or a step already done; otherwise the output is
-- stored, each dependent whose inputs are now all there and that has no
-- task yet is enqueued, and the run is done once every sink step is.
-- Returns how many tasks it enqueued.
local function step_done(run, step, enc, now, keep_until)
  local rk = base .. 'wr:' .. run
  local state, job, n, after, sinks, had =
    unpack(redis.call('HMGET', rk, 's', 'w', 'n', 'x' .. step, 'sk', 'o' .. step))
  if state ~= 'running' or had then
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
  -- Done once every sink is (without the sink list, once every step is).
  local fields = {}
  if sinks then
    for _, s in ipairs(split(sinks)) do
      fields[#fields + 1] = 'o' .. s
    end
  else
    for i = 0, tonumber(n) - 1 do
      fields[#fields + 1] = 'o' .. i
    end
  end
  local all = true
  for _, o in ipairs(hmget(rk, fields)) do
    if not o then
      all = false
    end
  end
  if all then
    redis.call('HSET', rk, 's', 'done', 'fin', now)
    redis.call('PEXPIREAT', rk, keep_until)
  end
  return created
end
