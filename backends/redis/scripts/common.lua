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
  local u, uf, c = unpack(redis.call('HMGET', tk, 'u', 'uf', 'c'))
  if not u then
    return 0
  end
  local uk = base .. 'u:' .. u
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

-- Removes up to `k` entries of the done index whose task hash has expired,
-- continuing from where the previous call stopped.
local function prune_done(k)
  local cursor_key = base .. 'pc'
  local cursor = redis.call('GET', cursor_key) or '0'
  local ids = redis.call('ZRANGEBYSCORE', base .. 'done', '(' .. cursor, '+inf', 'LIMIT', 0, k)
  if #ids == 0 then
    redis.call('DEL', cursor_key)
    return
  end
  local gone = {}
  for _, id in ipairs(ids) do
    if redis.call('EXISTS', tkey(id)) == 0 then
      gone[#gone + 1] = id
    end
  end
  if #gone > 0 then
    redis.call('ZREM', base .. 'done', unpack(gone))
    count('done', -#gone)
  end
  if #ids < k then
    redis.call('DEL', cursor_key)
  else
    redis.call('SET', cursor_key, ids[#ids])
  end
end

local function is_live(state)
  return state == 'pending' or state == 'running' or state == 'retry'
end
