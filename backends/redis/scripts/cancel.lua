-- Cancels a pending, retry or running task; a workflow step's run fails
-- (its other live steps are cancelled too). KEYS[1] counts, KEYS[2]
-- cancelled index. ARGV: base, now, seq, retention in ms (a workflow run
-- failed here is kept that long). Returns 1 if it did.
local now, seq = tonumber(ARGV[2]), ARGV[3]
local rec = redis.call('HGET', T, seq)
local v = redis.call('HGET', S, seq)
if not rec or not is_live(parse_state(v)) then
  return 0
end
local t = record(rec)
cancel_task(seq, t, v, now)
if t.run then
  fail_run(t.run, t.step, 'the task was cancelled', now, now + tonumber(ARGV[4]))
end
flush_counts()
return 1
