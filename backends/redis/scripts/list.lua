-- Lists tasks of one queue by ascending seq (read only).
-- KEYS[1] jobs, KEYS[2] workers. ARGV: base, state ('' for any, '=' for the
-- one task whose seq is `after`), job ('' for any), after (seq), limit.
-- Returns 7 per task: seq, record, state value (nil: never claimed), last
-- error, worker (for a running task), for a done workflow step its output
-- as its run keeps it (encoded as a payload element; a step's done state
-- does not repeat it), and the latest progress of its current attempt.
local state, job, after, limit = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local workers = {} -- seq -> worker, for the running tasks found

local function matches(seq, want)
  local rec = redis.call('HGET', T, seq)
  if not rec then
    return false
  end
  if want ~= nil and parse_state(redis.call('HGET', S, seq)) ~= want then
    return false
  end
  if job == '' then
    return true
  end
  local ok, _, _, _, _, _, rec_job = pcall(struct.unpack, RECORD, rec)
  -- An unreadable record is listed, for the backend to report it.
  return not ok or rec_job == job
end

-- The first set bit of bitmap `key` at or after bit `start`, or -1: the
-- rest of start's byte, then BITPOS by bytes (its BIT mode needs Redis 7).
local function next_bit(key, start)
  local first = start - start % 8
  local byte = redis.call('BITFIELD', key, 'GET', 'u8', first)[1]
  for i = start - first, 7 do
    if math.floor(byte / 2 ^ (7 - i)) % 2 == 1 then
      return first + i
    end
  end
  return redis.call('BITPOS', key, 1, first / 8 + 1)
end

-- Done tasks are bits of bitmaps by seq (see common.lua): walk them from `after`.
local function from_bitmaps()
  local found = {}
  local first = math.floor(after / BLOCK)
  for _, b in ipairs(redis.call('ZRANGEBYSCORE', base .. 'db', first, '+inf')) do
    local key = base .. 'done:' .. b
    local start = 0
    if tonumber(b) == first then
      start = after - first * BLOCK + 1
    end
    while #found < limit do
      local bit = next_bit(key, start)
      if bit < 0 then
        break
      end
      local seq = tonumber(b) * BLOCK + bit
      if matches(string.format('%d', seq), 'done') then
        found[#found + 1] = seq
      end
      start = bit + 1
    end
    if #found >= limit then
      break
    end
  end
  return found
end

-- Dead and cancelled tasks have an index by seq: walk it from `after`.
local function from_index(name)
  local found = {}
  local cursor = after
  while #found < limit do
    local ids = redis.call('ZRANGEBYSCORE', base .. name, '(' .. cursor, '+inf', 'LIMIT', 0, 500)
    if #ids == 0 then
      break
    end
    for _, id in ipairs(ids) do
      if matches(id, name) then
        found[#found + 1] = tonumber(id)
        if #found >= limit then
          break
        end
      end
    end
    cursor = ids[#ids]
  end
  return found
end

local function jobs()
  if job ~= '' then
    return { job }
  end
  return redis.call('SMEMBERS', KEYS[1])
end

-- Live states are read from the ready, delayed and in-flight sets.
local function live(want)
  local found = {}
  local function consider(seq)
    seq = tonumber(seq)
    if seq > after and matches(seq, want) then
      found[#found + 1] = seq
      return true
    end
    return false
  end
  for _, j in ipairs(jobs()) do
    if want == 'pending' then
      for _, m in ipairs(redis.call('ZRANGE', base .. 'r:' .. j, 0, -1)) do
        consider(seq_of(m))
      end
    end
    if want == 'pending' or want == 'retry' then
      for _, seq in ipairs(redis.call('ZRANGE', base .. 'd:' .. j, 0, -1)) do
        consider(seq)
      end
    end
  end
  if want == 'running' then
    for _, w in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
      for _, seq in ipairs(redis.call('SMEMBERS', base .. 'if:' .. w)) do
        if consider(seq) then
          workers[tonumber(seq)] = w
        end
      end
    end
  end
  table.sort(found)
  return found
end

local function of_state(s)
  if s == 'done' then
    return from_bitmaps()
  elseif s == 'dead' or s == 'cancelled' then
    return from_index(s)
  end
  return live(s)
end

local seqs
if state == '=' then
  seqs = {}
  if matches(after, nil) then
    seqs[1] = after
    if parse_state(redis.call('HGET', S, after)) == 'running' then
      workers[after] = worker_of(after)
    end
  end
elseif state ~= '' then
  seqs = of_state(state)
else
  seqs = {}
  for _, s in ipairs({ 'pending', 'running', 'retry', 'done', 'dead', 'cancelled' }) do
    for _, seq in ipairs(of_state(s)) do
      seqs[#seqs + 1] = seq
    end
  end
  table.sort(seqs)
end

-- A done workflow step's output, from its run.
local function step_output(rec, v)
  local flags = rec and string.byte(rec, 1)
  if not flags or flags % 4 < 2 or not v or string.sub(v, 1, 1) ~= 'd' then
    return false
  end
  local t = try_record(rec)
  if not t or not t.run then
    return false
  end
  return redis.call('HGET', base .. 'wr:' .. int(t.run), 'o' .. t.step)
end

local out = {}
for i = 1, math.min(#seqs, limit) do
  local seq = seqs[i]
  local o = #out
  local rec, v = redis.call('HGET', T, seq), redis.call('HGET', S, seq)
  out[o + 1] = seq
  out[o + 2] = rec
  out[o + 3] = v
  out[o + 4] = redis.call('HGET', E, seq)
  out[o + 5] = workers[seq] or false
  out[o + 6] = step_output(rec, v)
  out[o + 7] = redis.call('HGET', G, seq)
end
return out
