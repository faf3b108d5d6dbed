-- Records the outcomes of finished runs of one worker.
-- KEYS[1] the worker's in-flight set, KEYS[2] counts, KEYS[3] done index,
-- KEYS[4] dead index.
-- ARGV: base, now, worker, retention in ms, wake channel, queue name,
-- prune batch, the worker's job, then 4 per ack: seq, kind (D done,
-- R retry, X dead, S snooze, W done for a workflow step: then a 5th, the
-- output encoded as a payload element), at, data (result or error).
-- A task is running for this worker while it is in the worker's in-flight
-- set; acks for other tasks are ignored. Only the tasks in the worker's
-- `sp:` set (workflow steps, unique keys) have their hash read.
-- Returns {finished, tasks enqueued by workflow steps}.
local now, worker, retention, job = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]), ARGV[8]
local special_key = base .. 'sp:' .. worker
local keep = now + retention
local requeued = false
local acks = {}
local seqs = {}
local i = 9
while i <= #ARGV do
  local kind = ARGV[i + 1]
  local a = { ARGV[i], kind, ARGV[i + 2], ARGV[i + 3] }
  if kind == 'W' then
    a[2], a[5] = 'D', ARGV[i + 4]
    i = i + 5
  else
    i = i + 4
  end
  acks[#acks + 1] = a
  seqs[#seqs + 1] = a[1]
end
if #seqs == 0 then
  return { 0, 0 }
end
local owned = redis.call('SMISMEMBER', KEYS[1], unpack(seqs))
local special = redis.call('SMISMEMBER', special_key, unpack(seqs))
local finished = {}
local specials = {}
local done = {}
local expiring = {}
local added = 0
for k, a in ipairs(acks) do
  local seq, kind, at, data, enc = a[1], a[2], a[3], a[4], a[5]
  local tk = tkey(seq)
  if owned[k] == 1 then
    finished[#finished + 1] = seq
    count('running', -1)
    local u, run, step = false, false, false
    if special[k] == 1 then
      specials[#specials + 1] = seq
      u, run, step = unpack(redis.call('HMGET', tk, 'u', 'wr', 'ws'))
    end
    if kind == 'D' then
      redis.call('HSET', tk, 's', 'done', 'o', data, 'f', now)
      done[#done + 1] = seq
      done[#done + 1] = seq
      local keep_until = keep
      if u then
        keep_until = math.max(keep, release_unique(tk, seq, now))
      end
      redis.call('PEXPIREAT', tk, keep_until)
      if keep_until == keep then
        expiring[#expiring + 1] = seq
      else
        redis.call('ZADD', base .. 'x', keep_until, seq)
      end
      count('done', 1)
      if run then
        if enc then
          added = added + step_done(run, step, enc, now, keep)
        else
          fail_run(run, step, 'its output reached Redis without its encoded form', now, keep)
        end
      end
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
      if u then
        release_unique(tk, seq, now)
      end
      count('dead', 1)
      if run then
        fail_run(run, step, data, now, keep)
      end
    end
  else
    -- Cancelled meanwhile (or rescued): forget it.
    redis.call('SREM', base .. 'cx:' .. worker, seq)
    if special[k] == 1 then
      specials[#specials + 1] = seq
    end
  end
end
if #finished > 0 then
  redis.call('SREM', KEYS[1], unpack(finished))
end
if #specials > 0 then
  redis.call('SREM', special_key, unpack(specials))
end
for j = 1, #done, 1000 do
  redis.call('ZADD', KEYS[3], unpack(done, j, math.min(j + 999, #done)))
end
if #expiring > 0 then
  -- One entry for the tasks that expire together (see prune_done).
  redis.call('ZADD', base .. 'x', keep, table.concat(expiring, ','))
end
prune_done(tonumber(ARGV[7]), now)
flush_counts()
if requeued or added > 0 then
  redis.call('PUBLISH', ARGV[5], ARGV[6])
end
return { #finished, added }
