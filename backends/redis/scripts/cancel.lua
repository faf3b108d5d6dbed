-- Cancels a pending, retry or running task. KEYS[1] counts, KEYS[2]
-- cancelled index. ARGV: base, now, seq. Returns 1 if it did.
local now, seq = tonumber(ARGV[2]), ARGV[3]
local rec = redis.call('HGET', T, seq)
local v = redis.call('HGET', S, seq)
if not rec or not is_live(parse_state(v)) then
  return 0
end
cancel_task(seq, record(rec), v, now)
flush_counts()
return 1
