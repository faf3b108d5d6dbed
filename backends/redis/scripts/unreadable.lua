-- Sends claimed tasks whose stored data the backend cannot read to dead,
-- with the read error, if they are still running for this worker; they
-- never run. A workflow step's run fails with them (when the record still
-- names the run).
-- KEYS[1] the worker's in-flight set, KEYS[2] counts, KEYS[3] dead index
-- (`base .. 'dead'`).
-- ARGV: base, now, worker, retention in ms (-1: kept; a workflow run failed
-- here is kept that long), then 2 per task: seq, error.
-- Returns how many it sent to dead.
local now, worker = tonumber(ARGV[2]), ARGV[3]
retention = tonumber(ARGV[4])
local buried = 0
for i = 5, #ARGV, 2 do
  local seq, err = ARGV[i], ARGV[i + 1]
  local v = redis.call('HGET', S, seq)
  if v and string.sub(v, 1, 1) == 'r' and redis.call('SISMEMBER', KEYS[1], seq) == 1 then
    bury_running(seq, v, err, now)
    redis.call('SREM', KEYS[1], seq)
    redis.call('SREM', base .. 'sp:' .. worker, seq)
    buried = buried + 1
    -- The record may still be readable here (the backend refuses more than
    -- Lua's `struct` does): then free its unique key and fail its run.
    local t = try_record(redis.call('HGET', T, seq))
    if t then
      release_unique(t, seq, now)
      if t.run then
        fail_run(t.run, t.step, err, now)
      end
    end
  end
end
flush_counts()
return buried
