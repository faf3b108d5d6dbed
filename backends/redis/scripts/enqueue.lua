-- Writes new tasks of one queue. KEYS[1] seq, KEYS[2] counts, KEYS[3] jobs.
-- ARGV: base, now, wake channel, queue name, then 8 per task:
-- job, payload, run_at, priority, max_attempts, has_unique ('0'/'1'),
-- unique key, unique window in ms.
-- Returns the seq of each task, in order: the new task's, or the live (or
-- recent) duplicate's.
local now = tonumber(ARGV[2])
local out = {}
local created = 0
local jobs = {}
for i = 5, #ARGV, 8 do
  local job, payload, run_at, priority = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
  local max_attempts, has_unique, ukey, ufor = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], tonumber(ARGV[i + 7])
  local dup = nil
  local uk = nil
  if has_unique == '1' then
    uk = base .. 'u:' .. ukey
    local existing = redis.call('GET', uk)
    if existing then
      local state, created_at = unpack(redis.call('HMGET', tkey(existing), 's', 'c'))
      if state and (is_live(state) or (ufor > 0 and tonumber(created_at) >= now - ufor)) then
        dup = existing
      end
    end
  end
  if dup then
    out[#out + 1] = tonumber(dup)
  else
    local seq = redis.call('INCR', KEYS[1])
    local tk = tkey(seq)
    redis.call('HSET', tk, 'j', job, 's', 'pending', 'a', 0, 'm', max_attempts, 'pr', priority,
      'r', run_at, 'c', now, 'p', payload)
    if uk then
      redis.call('HSET', tk, 'u', ukey, 'uf', ufor)
      redis.call('SET', uk, seq)
    end
    if run_at <= now then
      make_ready(job, priority, run_at, seq)
    else
      make_delayed(job, run_at, seq)
    end
    if not jobs[job] then
      jobs[job] = true
      redis.call('SADD', KEYS[3], job)
    end
    created = created + 1
    out[#out + 1] = seq
  end
end
if created > 0 then
  count('pending', created)
  flush_counts()
  redis.call('PUBLISH', ARGV[3], ARGV[4])
end
return out
