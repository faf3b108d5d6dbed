-- Puts back the running tasks of this queue's workers whose heartbeat key
-- expired: pending again, or dead on their last attempt. Also prunes the
-- done index.
-- KEYS[1] workers, KEYS[2] worker details, KEYS[3] counts, KEYS[4] dead index.
-- ARGV: base, now, orphan_after in ms, wake channel, queue name, prune batch,
-- retention in ms (a workflow run failed here is kept that long).
local now, orphan_after = tonumber(ARGV[2]), tonumber(ARGV[3])
local rescued, requeued = 0, false
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - orphan_after, 'LIMIT', 0, 100)
for _, worker in ipairs(stale) do
  if redis.call('EXISTS', base .. 'hb:' .. worker) == 0 then
    local inflight = base .. 'if:' .. worker
    for _, seq in ipairs(redis.call('SMEMBERS', inflight)) do
      local tk = tkey(seq)
      local state, w, a, m, job, priority, run, step =
        unpack(redis.call('HMGET', tk, 's', 'w', 'a', 'm', 'j', 'pr', 'wr', 'ws'))
      if state == 'running' and w == worker then
        rescued = rescued + 1
        count('running', -1)
        if tonumber(a) >= tonumber(m) then
          local message = string.format(
            'worker `%s` stopped heartbeating during the last attempt (%s of %s)', worker, a, m)
          redis.call('HSET', tk, 's', 'dead', 'e', message, 'f', now)
          redis.call('ZADD', KEYS[4], seq, seq)
          release_unique(tk, seq, now)
          count('dead', 1)
          if run then
            fail_run(run, step, message, now, now + tonumber(ARGV[7]))
          end
        else
          redis.call('HSET', tk, 's', 'pending', 'r', now)
          make_ready(job, priority, now, seq)
          count('pending', 1)
          requeued = true
        end
      end
    end
    redis.call('DEL', inflight, base .. 'lc:' .. worker, base .. 'cx:' .. worker, base .. 'sp:' .. worker)
    redis.call('ZREM', KEYS[1], worker)
    redis.call('HDEL', KEYS[2], worker)
  end
end
prune_done(tonumber(ARGV[6]), now)
flush_counts()
if requeued then
  redis.call('PUBLISH', ARGV[4], ARGV[5])
end
return rescued
