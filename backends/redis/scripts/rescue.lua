-- Puts back the running tasks of this queue's workers whose heartbeat key
-- expired: pending again, or dead on their last attempt (a workflow step's
-- run then fails). Liveness is the server's: the heartbeat keys expire by
-- its clock, and the workers' last beats (scored by its `TIME`) are
-- compared with its `TIME`. A running task whose record or state cannot be
-- read goes dead saying so (it cannot be put back).
-- KEYS[1] workers, KEYS[2] worker details, KEYS[3] counts, KEYS[4] dead index.
-- ARGV: base, now (the caller's clock: the times stored), orphan_after in
-- ms, wake channel, queue name, retention in ms (-1: kept; a workflow run
-- failed here is kept that long).
-- Returns how many tasks it rescued.
local now, orphan_after = tonumber(ARGV[2]), tonumber(ARGV[3])
retention = tonumber(ARGV[6])
local time = redis.call('TIME')
local server_now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local rescued, requeued = 0, false
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', int(server_now - orphan_after), 'LIMIT', 0, 100)
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
        if recs[k] and v and state == nil then
          -- In the in-flight set, so it was running: it cannot be put back.
          rescued = rescued + 1
          bury_running(seq, v, string.format(
            'worker `%s` stopped heartbeating, and the task\'s state `%s` is malformed', worker,
            string.sub(v, 1, 40)), now)
        elseif recs[k] and v and state == 'running' then
          local t, problem = try_record(recs[k])
          rescued = rescued + 1
          if not t then
            -- Its job and attempts are unknown: it cannot be put back.
            bury_running(seq, v, string.format('worker `%s` stopped heartbeating, and %s', worker, problem), now)
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
              fail_run(t.run, t.step, message, now)
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
    -- Its claims' book keeps only what refuses a claim of it that runs
    -- late (see claim.lua), for a day.
    local claims = base .. 'cl:' .. worker
    local top = tonumber(redis.call('HGET', claims, 'top') or '')
    redis.call('DEL', inflight, claims, base .. 'cx:' .. worker, base .. 'sp:' .. worker)
    if top then
      redis.call('HSET', claims, 'floor', int(top + 1))
    end
    redis.call('HSET', claims, 'rescued', '1')
    redis.call('PEXPIRE', claims, 86400000)
    redis.call('ZREM', KEYS[1], worker)
    redis.call('HDEL', KEYS[2], worker)
  end
end
flush_counts()
if requeued then
  redis.call('PUBLISH', ARGV[4], ARGV[5])
end
return rescued
