-- Shared helpers, prepended to every script that changes tasks.
--
-- ARGV[1] is always the queue's key base, `<prefix>{<queue>}:`; every key a
-- script touches starts with it, so all of them live in the queue's hash slot.
--
-- No script raises an error after its first write: Redis does not roll back
-- a script that fails part-way, so a raise after a write would leave half an
-- operation behind (counts that drift, a task in two sets). Stored data is
-- only read through the helpers below, which report what they cannot read
-- instead of raising (`try_record`, `parse_state`, `seq_of`); counts change
-- through `redis.pcall`; every number given to a command was checked first.
-- What a script cannot read, it reports (an error reply) before writing, or
-- handles (the task goes dead with the read error) without raising.
local base = ARGV[1]

-- A task is one field (its seq) in each of these hashes:
--   `t` its record, written once at enqueue (see `record` below);
--   `s` its state once it was first claimed (absent: pending, attempt 0,
--       run_at as enqueued), see `parse_state`;
--   `e` its last error, if any;
--   `g` the latest progress its current attempt reported, if any
--       (`<percent>|<message>`; a claim deletes it).
local T, S, E, G = base .. 't', base .. 's', base .. 'e', base .. 'g'

-- How long finished workflow runs are kept, in ms (-1: kept); a script that
-- ends runs sets it from its arguments.
local retention = -1

-- Whether `x` is a whole number of milliseconds that doubles hold exactly.
local function is_ms(x)
  return type(x) == 'number' and x == x and x == math.floor(x) and math.abs(x) < 9007199254740992
end

-- `x` (a whole number) as a decimal integer: concatenating a Lua number
-- formats it with `%.14g`, which loses digits past 14.
local function int(x)
  return string.format('%d', x)
end

-- A record: flags (1 unique key, 2 workflow step, 4 trace context),
-- priority, max attempts, created (ms), run_at as enqueued (ms), job; with
-- flag 1 the unique key and its window (ms); with flag 2 the workflow run
-- and step; with flag 4 the trace context (2-byte length, then its bytes;
-- the scripts only copy a run's into its step tasks); then the payload.
-- A record without flag 4 (all of them before trace contexts) has none.
-- Unknown flags are left to the backend, which refuses such a record when it
-- is claimed.
local RECORD = '>BhI4ddHc0'
-- The flags that make a task's ack read its record (unique key, workflow
-- step): `flags % SPECIAL ~= 0`.
local SPECIAL = 4
-- The longest trace context a record holds (its length is 2 bytes); the
-- backend stores at most 1024 bytes (`MAX_TRACE_LEN`).
local MAX_TRACE = 65535

-- Decodes a record; raises when it cannot (use `try_record`).
local function record(rec)
  local flags, priority, max, created, run_at, job, pos = struct.unpack(RECORD, rec)
  if not is_ms(created) or not is_ms(run_at) then
    error('its creation time or run_at is not a whole number of milliseconds')
  end
  local t = { priority = priority, max = max, created = created, run_at = run_at, job = job }
  if flags % 2 == 1 then
    t.u, t.uf, pos = struct.unpack('>I4c0d', rec, pos)
    if not is_ms(t.uf) or t.uf < 0 then
      error('its unique window is not a whole number of milliseconds')
    end
  end
  if flags % 4 >= 2 then
    t.run, t.step, pos = struct.unpack('>dH', rec, pos)
    if not is_ms(t.run) or t.run < 0 then
      error('its workflow run is not a run number')
    end
  end
  if flags % 8 >= 4 then
    t.trace, pos = struct.unpack('>Hc0', rec, pos)
  end
  t.pos = pos
  return t
end

-- The decoded record `rec`, or nil and what is wrong with it.
local function try_record(rec)
  if not rec then
    return nil, 'its record is missing'
  end
  local ok, t = pcall(record, rec)
  if ok then
    return t
  end
  -- Without the script's position that Lua puts in front.
  local problem = string.gsub(tostring(t), '^.-:%d+: ', '')
  return nil, 'its record cannot be read: ' .. problem
end

-- A state value: a letter for the state, the attempt, `|`, run_at when it
-- differs from the record's; for a finished task then `|` and when it
-- finished, and for a done one `|` and its output (a workflow step's done
-- state has no output: it is kept once, in its run).
local NAMES = { p = 'pending', r = 'running', y = 'retry', d = 'done', x = 'dead', c = 'cancelled' }

-- state, attempt, run_at (nil: as enqueued), finished of a state value
-- (pending, 0 for none); nil for a malformed one (what the backend's reader
-- refuses: `<letter><attempt>|<run_at>[|<finished>[|<output>]]`).
local function parse_state(v)
  if not v then
    return 'pending', 0, nil, nil
  end
  local _, e, l, a, r = string.find(v, '^(%a)(%d+)|(%-?%d*)')
  local state = NAMES[l]
  local attempt = tonumber(a)
  if not state or not is_ms(attempt) or attempt >= 4294967296 then
    return nil
  end
  local run_at, finished = nil, nil
  if r ~= '' then
    run_at = tonumber(r)
    if not is_ms(run_at) then
      return nil
    end
  end
  if e < #v then
    if string.byte(v, e + 1) ~= 124 then -- '|'
      return nil
    end
    local _, e2, f = string.find(v, '^(%-?%d*)', e + 2)
    if e2 < #v and string.byte(v, e2 + 1) ~= 124 then
      return nil
    end
    if f ~= '' then
      finished = tonumber(f)
      if not is_ms(finished) then
        return nil
      end
    end
  end
  return state, attempt, run_at, finished
end

-- The state whose count holds a task with the malformed state value `v`
-- that was found waiting: the one its letter names, else `pending`.
local function counted_as(v)
  return NAMES[string.sub(v or '', 1, 1)] or 'pending'
end

-- `v` (a live task's state value, nil for a never claimed one) finished in
-- state `letter` at `now`; a malformed `v` is replaced (attempt 0).
local function finish_value(letter, v, now)
  if v and parse_state(v) then
    return letter .. string.sub(v, 2) .. '|' .. now
  end
  return letter .. '0||' .. now
end

-- Member of a ready set: run_at (13 digits) then seq (12 digits), so that
-- equal priorities (equal scores) pop by earliest run_at, then lowest seq.
-- A run_at outside 13 digits is clamped, so that `seq_of` finds the seq.
local function ready_member(run_at, seq)
  local r = tonumber(run_at) or 0
  if r ~= r or r < 0 then
    r = 0
  elseif r > 9999999999999 then
    r = 9999999999999
  end
  return string.format('%013d%012d', math.floor(r), tonumber(seq))
end

-- The seq (a string, without leading zeros) of a ready-set member; nil for
-- a member this version did not write.
local function seq_of(member)
  return string.match(member, '^0*(%d+)$', 14)
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
  if state then
    tally[state] = (tally[state] or 0) + delta
  end
end
local function flush_counts()
  for state, delta in pairs(tally) do
    if delta ~= 0 then
      -- `pcall`: a count that is not an integer (reads report it) must not
      -- fail a script that has written already.
      redis.pcall('HINCRBY', base .. 'n', state, delta)
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
  if #items == 0 then
    return {}
  end
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

-- A task (its record `t`, nil when unreadable) reached a final state: free
-- its unique key, or keep it until the end of its window. Returns when the
-- window ends (0 without one).
local function release_unique(t, seq, now)
  if not t or not t.u then
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
    redis.call('PEXPIREAT', uk, int(window_end))
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
    if b then
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

-- Cancels live task `seq` (its record `t`, nil when unreadable; state value
-- `v`); a running one is reported to its worker through `cx:<worker>`. A
-- waiting one whose record cannot be read keeps its ready or delayed entry,
-- which the next claim drops (the task is no longer waiting).
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
  elseif t then
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
-- payload element); and `tr` the run's trace context (absent without one).
-- The graph's tables (`a`, `x`, `sk`, `f`) come from the runtime's planner,
-- and the functions below advance a run as it does. A step's task record
-- carries its run and step, and the run's trace context. A finished run expires
-- `retention` ms after it finished (by the server's clock). The sorted set
-- `wl` indexes the queue's runs by number (member and score), for listings:
-- `start.lua` adds a run, and the purge takes out the runs that expired,
-- which `wx` lists by when they expire (score; member the run number).

local function split(list)
  local out = {}
  for item in string.gmatch(list or '', '[^,]+') do
    out[#out + 1] = item
  end
  return out
end

-- The number a run field holds, if it is a whole number in `lo..hi`.
local function field_number(value, lo, hi)
  local n = tonumber(value)
  if n and n == math.floor(n) and n >= lo and n <= hi then
    return n
  end
  return nil
end

-- A finished run (its hash `rk`, its number `run`) is kept for the
-- retention: its hash expires by itself, and `wx` notes when (by this
-- process's clock), for the purge to take it out of the run index `wl`.
local function expire_run(rk, run, now)
  if retention >= 0 then
    redis.call('PEXPIRE', rk, int(retention))
    redis.call('ZADD', base .. 'wx', int(now + retention), int(run))
  end
end

-- A new ready task of step `step` of run `run` (its fields checked by the
-- caller), carrying the run's trace context `trace` (nil or false for none;
-- one too long for a record is left out); returns its seq.
local function new_task(job, payload, priority, max_attempts, now, run, step, trace)
  local seq = redis.call('INCR', base .. 'seq')
  local rec
  if trace and #trace <= MAX_TRACE then
    rec = struct.pack(RECORD .. 'dHHc0', 6, priority, max_attempts, now, now, #job, job, run, step, #trace, trace)
  else
    rec = struct.pack(RECORD .. 'dH', 2, priority, max_attempts, now, now, #job, job, run, step)
  end
  redis.call('HSET', T, seq, rec .. payload)
  make_ready(job, priority, now, seq)
  count('pending', 1)
  return seq
end

-- Step `step` of run `run` went dead with `err`: the run fails, its other
-- live steps are cancelled (a step whose record cannot be read too).
local function fail_run(run, step, err, now)
  local rk = base .. 'wr:' .. int(run)
  local state, n, prefix = unpack(redis.call('HMGET', rk, 's', 'n', 'f' .. step))
  if state ~= 'running' then
    return
  end
  redis.call('HSET', rk, 's', 'failed', 'e', (prefix or '') .. err, 'fin', now)
  expire_run(rk, run, now)
  -- Without a readable step count the other steps cannot be found.
  n = field_number(n, 1, 65536)
  for i = 0, (n or 0) - 1 do
    if i ~= tonumber(step) then
      local t = redis.call('HGET', rk, 't' .. i)
      if t then
        local rec = redis.call('HGET', T, t)
        local v = redis.call('HGET', S, t)
        if rec and is_live(parse_state(v)) then
          cancel_task(t, try_record(rec), v, now)
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
-- Everything is read and checked before the first write: a run hash that
-- cannot be read fails the run instead. Returns how many tasks it enqueued.
local function step_done(run, step, enc, now)
  local rk = base .. 'wr:' .. int(run)
  local own = 'o' .. step
  local state, job, n, after, sinks, had, trace =
    unpack(redis.call('HMGET', rk, 's', 'w', 'n', 'x' .. step, 'sk', own, 'tr'))
  if state ~= 'running' or had then
    return 0
  end
  n = field_number(n, 1, 65536)
  local problem = nil
  if not job or #job > 65535 or not n then
    problem = 'its workflow or step count is missing'
  end
  -- The outputs of `fields`, this step's own (not stored yet) included.
  local function outputs(fields)
    local values = hmget(rk, fields)
    for i, f in ipairs(fields) do
      if f == own then
        values[i] = enc
      end
    end
    return values
  end
  local ready = {} -- {step, payload, priority, max attempts}
  for _, d in ipairs(split(after)) do
    if problem then
      break
    end
    local deps_s, t, prio, max = unpack(redis.call('HMGET', rk, 'a' .. d, 't' .. d, 'p' .. d, 'm' .. d))
    if not t then
      local deps = split(deps_s)
      local fields = {}
      for _, dep in ipairs(deps) do
        fields[#fields + 1] = 'o' .. dep
      end
      local outs = outputs(fields)
      local all_in = #deps > 0
      for i = 1, #deps do
        if not outs[i] then
          all_in = false
        end
      end
      if all_in then
        local names = {}
        for j = 0, #deps do
          names[#names + 1] = 'k' .. d .. '.' .. j
        end
        local parts = hmget(rk, names)
        prio, max = field_number(prio, -32768, 32767), field_number(max, 0, 4294967295)
        local step_n = field_number(d, 0, n - 1)
        local payload = { parts[1] }
        for i = 1, #deps do
          payload[#payload + 1] = outs[i]
          payload[#payload + 1] = parts[i + 1]
        end
        for j = 1, #deps + 1 do
          if not parts[j] then
            problem = 'the payload parts of step ' .. d .. ' are missing'
          end
        end
        if not prio or not max or not step_n then
          problem = 'the settings of step ' .. d .. ' are missing'
        end
        if not problem then
          ready[#ready + 1] = { step_n, table.concat(payload), prio, max }
        end
      end
    end
  end
  -- Done once every sink is (without the sink list, once every step is).
  local fields = {}
  if sinks then
    for _, s in ipairs(split(sinks)) do
      fields[#fields + 1] = 'o' .. s
    end
  elseif n then
    for i = 0, n - 1 do
      fields[#fields + 1] = 'o' .. i
    end
  end
  local all = #fields > 0
  for _, o in ipairs(outputs(fields)) do
    if not o then
      all = false
    end
  end
  if problem then
    fail_run(run, step, 'its workflow run cannot be read: ' .. problem, now)
    return 0
  end
  redis.call('HSET', rk, own, enc)
  for _, r in ipairs(ready) do
    local seq = new_task(job, r[2], r[3], r[4], now, run, r[1], trace)
    redis.call('HSET', rk, 't' .. r[1], seq)
  end
  if all then
    redis.call('HSET', rk, 's', 'done', 'fin', now)
    expire_run(rk, run, now)
  end
  return #ready
end
