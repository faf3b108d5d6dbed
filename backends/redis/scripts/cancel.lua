-- Cancels a pending, retry or running task. KEYS[1] counts, KEYS[2]
-- cancelled index. ARGV: base, now, seq. Returns 1 if it did.
local now, seq = tonumber(ARGV[2]), ARGV[3]
local state, job, run_at, w = unpack(redis.call('HMGET', tkey(seq), 's', 'j', 'r', 'w'))
if not state or not is_live(state) then
  return 0
end
cancel_task(seq, state, job, run_at, w, now)
flush_counts()
return 1
