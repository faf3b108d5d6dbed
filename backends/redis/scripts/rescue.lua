-- Puts back the running tasks of this queue's workers whose heartbeat key
-- expired: pending again, or dead on their last attempt. Also prunes the
-- done tasks whose retention has passed.
-- KEYS[1] workers, KEYS[2] worker details, KEYS[3] counts, KEYS[4] dead index.
-- ARGV: base, now, orphan_after in ms, wake channel, queue name, prune batch,
-- retention in ms (a workflow run failed here is kept that long).
local now, orphan_after = tonumber(ARGV[2]), tonumber(ARGV[3])
local rescued, requeued = 0, false
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - orphan_after, 'LIMIT', 0, 100)
for _, worker in ipairs(stale) do
  if redis.call('EXISTS', base .. 'hb:' .. worker) == 0 then
    local inflight = base .. 'if:' .. worker
    local seqs = redis.call('SMEMBERS', inflight)
    if #seqs > 0 then
      local recs = hmget(T, seqs)
      local states = hmget(S, seqs)
      for k, seq in ipairs(seqs) do
        local v = states[k]
        local state, attempt = parse_state(v)
        if recs[k] and v and state == 'running' then
          local ok, t = pcall(record, recs[k])
          rescued = rescued + 1
          if not ok then
            -- Its job and attempts are unknown: it cannot be put back.
            bury_running(seq, v, string.format(
              'worker `%s` stopped heartbeating, and the task\'s record cannot be read', worker), now)
          elseif attempt >= t.max then
            count('running', -1)
            local message = string.format(
              'worker `%s` stopped heartbeating during the last attempt (%d of %d)', worker, attempt, t.max)
            redis.call('HSET', S, seq, finish_value('x', v, now))
            redis.call('HSET', E, seq, message)
            redis.call('ZADD', KEYS[4], seq, seq)
            release_unique(t, seq, now)
            count('dead', 1)
            if t.run then
              fail_run(t.run, t.step, message, now, now + tonumber(ARGV[7]))
            end
          else
            count('running', -1)
            redis.call('HSET', S, seq, 'p' .. attempt .. '|' .. now)
            make_ready(t.job, t.priority, now, seq)
            count('pending', 1)
            requeued = true
          end
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
