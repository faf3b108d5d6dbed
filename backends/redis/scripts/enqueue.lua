-- Writes new tasks of one queue. KEYS[1] seq, KEYS[2] counts, KEYS[3] jobs.
-- ARGV: base, now, wake channel, queue name, number of tasks, then groups
-- of tasks that share their settings: count, job, priority, max_attempts,
-- due now ('1'/'0'), unique key ('' for none; scoped to the job; a group
-- with one has one task), unique window in ms, then 2 per task: payload, run_at (13 digits).
-- Returns the seq of each task, in order: the new task's, or the live (or
-- recent) duplicate's. Ids are taken with one INCRBY, so a duplicate leaves
-- a gap in the sequence.
local now = ARGV[2]
local n = tonumber(ARGV[5])
local seq = redis.call('INCRBY', KEYS[1], n) - n
local tprefix = base .. 't:'
local out = {}
local created = 0
local ready = {} -- job -> {score, member, ...}
local jobs = {}
local i = 6
while i <= #ARGV do
  local count, job, priority, max_attempts = tonumber(ARGV[i]), ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local due, ukey, ufor = ARGV[i + 4] == '1', ARGV[i + 5], ARGV[i + 6]
  i = i + 7
  local batch = ready[job]
  if not batch then
    batch = {}
    ready[job] = batch
    jobs[#jobs + 1] = job
  end
  local score = -tonumber(priority)
  for _ = 1, count do
    local payload, run_at = ARGV[i], ARGV[i + 1]
    i = i + 2
    seq = seq + 1
    local dup = nil
    if ukey ~= '' then
      local existing = redis.call('GET', base .. 'u:' .. job .. ':' .. ukey)
      if existing then
        local state, created_at = unpack(redis.call('HMGET', tkey(existing), 's', 'c'))
        local window = tonumber(ufor)
        if state and (is_live(state) or (window > 0 and tonumber(created_at) >= tonumber(now) - window)) then
          dup = existing
        end
      end
    end
    if dup then
      out[#out + 1] = tonumber(dup)
    else
      local tk = tprefix .. seq
      if ukey ~= '' then
        redis.call('HSET', tk, 'j', job, 's', 'pending', 'a', 0, 'm', max_attempts, 'pr', priority,
          'r', run_at, 'c', now, 'p', payload, 'u', ukey, 'uf', ufor)
        redis.call('SET', base .. 'u:' .. job .. ':' .. ukey, seq)
      else
        redis.call('HSET', tk, 'j', job, 's', 'pending', 'a', 0, 'm', max_attempts, 'pr', priority,
          'r', run_at, 'c', now, 'p', payload)
      end
      if due then
        local b = #batch
        batch[b + 1] = score
        batch[b + 2] = string.format('%s%012d', run_at, seq)
      else
        redis.call('ZADD', base .. 'd:' .. job, run_at, seq)
      end
      created = created + 1
      out[#out + 1] = seq
    end
  end
end
for _, job in ipairs(jobs) do
  local batch = ready[job]
  for j = 1, #batch, 2000 do
    redis.call('ZADD', base .. 'r:' .. job, unpack(batch, j, math.min(j + 1999, #batch)))
  end
end
if created > 0 then
  redis.call('SADD', KEYS[3], unpack(jobs))
  count('pending', created)
  flush_counts()
  redis.call('PUBLISH', ARGV[3], ARGV[4])
end
return out
