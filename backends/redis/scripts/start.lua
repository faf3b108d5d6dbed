-- Writes a workflow run, its entry in the run index `wl`, and the tasks of
-- its entry steps.
-- KEYS[1] counts, KEYS[2] jobs, KEYS[3] the run index. ARGV: base, now, wake channel, queue name,
-- run, workflow (the job of its step tasks), the run's trace context ('-'
-- for none, else '+' then the context), number of run fields F, then F
-- field/value pairs of the run hash (see common.lua; the graph's tables, as
-- the planner has them), then 4 per entry step (the planner's start plan):
-- step, payload, priority, max_attempts.
-- The trace context is stored in the run (`tr`), for the steps the ack
-- script enqueues, and carried by the entry steps' tasks.
-- Returns the seqs of the entry steps' tasks.
local now, run, job = tonumber(ARGV[2]), ARGV[5], ARGV[6]
local rk = base .. 'wr:' .. run
local trace = nil
if string.sub(ARGV[7], 1, 1) == '+' then
  trace = string.sub(ARGV[7], 2)
end
local f = tonumber(ARGV[8])
local last = 8 + 2 * f
for i = 9, last, 1000 do
  redis.call('HSET', rk, unpack(ARGV, i, math.min(i + 999, last)))
end
if trace then
  redis.call('HSET', rk, 'w', job, 's', 'running', 'c', now, 'tr', trace)
else
  redis.call('HSET', rk, 'w', job, 's', 'running', 'c', now)
end
redis.call('ZADD', KEYS[3], run, run)
local out = {}
for i = last + 1, #ARGV, 4 do
  local step = ARGV[i]
  local seq = new_task(job, ARGV[i + 1], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]), now, tonumber(run),
    tonumber(step), trace)
  redis.call('HSET', rk, 't' .. step, seq)
  out[#out + 1] = seq
end
redis.call('SADD', KEYS[2], job)
flush_counts()
redis.call('PUBLISH', ARGV[3], ARGV[4])
return out
