-- Records the outcomes of finished runs of one worker.
-- KEYS[1] the worker's in-flight set, KEYS[2] counts, KEYS[3] done index,
-- KEYS[4] dead index.
-- ARGV: base, now, worker, retention in ms, wake channel, queue name,
-- prune batch, then 4 per ack: seq, kind (D done, R retry, X dead,
-- S snooze), at, data (result or error).
-- Acks for tasks no longer running for this worker are ignored.
local now, worker, retention = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local requeued = false
local finished = {}
for i = 8, #ARGV, 4 do
  local seq, kind, at, data = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local tk = tkey(seq)
  local state, w, job = unpack(redis.call('HMGET', tk, 's', 'w', 'j'))
  if state == 'running' and w == worker then
    finished[#finished + 1] = seq
    count('running', -1)
    if kind == 'D' then
      redis.call('HSET', tk, 's', 'done', 'o', data, 'f', now)
      redis.call('ZADD', KEYS[3], seq, seq)
      local keep_until = math.max(now + retention, release_unique(tk, seq, now))
      redis.call('PEXPIREAT', tk, keep_until)
      count('done', 1)
    elseif kind == 'R' then
      redis.call('HSET', tk, 's', 'retry', 'r', at, 'e', data)
      make_delayed(job, at, seq)
      count('retry', 1)
      requeued = true
    elseif kind == 'S' then
      redis.call('HSET', tk, 's', 'pending', 'r', at)
      redis.call('HINCRBY', tk, 'a', -1)
      make_delayed(job, at, seq)
      count('pending', 1)
      requeued = true
    else
      redis.call('HSET', tk, 's', 'dead', 'e', data, 'f', now)
      redis.call('ZADD', KEYS[4], seq, seq)
      release_unique(tk, seq, now)
      count('dead', 1)
    end
  else
    redis.call('SREM', base .. 'cx:' .. worker, seq)
  end
end
for i = 1, #finished, 500 do
  redis.call('SREM', KEYS[1], unpack(finished, i, math.min(i + 499, #finished)))
end
prune_done(tonumber(ARGV[7]))
flush_counts()
if requeued then
  redis.call('PUBLISH', ARGV[5], ARGV[6])
end
return #finished
