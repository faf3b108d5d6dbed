-- Cancels a pending, retry or running task; a workflow step's run fails
-- (its other live steps are cancelled too). A task whose record cannot be
-- read is cancelled all the same (its ready or delayed entry is dropped by
-- the next claim). KEYS[1] counts, KEYS[2] cancelled index.
-- ARGV: base, now, seq, retention in ms (-1: kept; a workflow run failed
-- here is kept that long). Returns 1 if it did.
local now, seq = tonumber(ARGV[2]), ARGV[3]
retention = tonumber(ARGV[4])
local rec = redis.call('HGET', T, seq)
local v = redis.call('HGET', S, seq)
if not rec or not is_live(parse_state(v)) then
  return 0
end
local t = try_record(rec)
cancel_task(seq, t, v, now)
if t and t.run then
  fail_run(t.run, t.step, 'the task was cancelled', now)
end
flush_counts()
return 1
