-- Retention: deletes the done tasks whose expiry has passed, about `limit`
-- of them per call. A member of `x` lists the seqs (comma separated) of
-- done tasks that expire together (those one ack call finished), scored by
-- when; their fields leave `t`, `s`, `e` and `g`, their done bits are cleared
-- (an emptied bitmap block is deleted) and the `done` count goes down.
-- Finished workflow runs are not here: their hashes expire by themselves;
-- the purge takes them out of the run index `wl`, about `limit` of them per
-- call, once their `wx` entry is due and their hash is gone (a hash still
-- there, by the server's clock, is looked at again when its expiry is due).
-- KEYS[1] `x`, KEYS[2] counts, KEYS[3] `wx`, KEYS[4] `wl`.
-- ARGV: base, now, limit.
-- Returns {tasks deleted, more (1 when expired entries are left)}.
local now, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
local deleted, seen = 0, 0
local more = 0
while more == 0 do
  local entries = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 16)
  if #entries == 0 then
    break
  end
  local done = {}
  for _, entry in ipairs(entries) do
    if seen >= limit then
      more = 1
      break
    end
    local ids = {}
    for id in string.gmatch(entry, '%d+') do
      ids[#ids + 1] = id
    end
    seen = seen + #ids
    deleted = deleted + mark_done(ids, '0')
    for j = 1, #ids, 1000 do
      local last = math.min(j + 999, #ids)
      redis.call('HDEL', T, unpack(ids, j, last))
      redis.call('HDEL', S, unpack(ids, j, last))
      redis.call('HDEL', E, unpack(ids, j, last))
      redis.call('HDEL', G, unpack(ids, j, last))
    end
    done[#done + 1] = entry
  end
  if #done > 0 then
    redis.call('ZREM', KEYS[1], unpack(done))
  end
end
-- Expired workflow runs leave the run index.
local runs = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, limit + 1)
if #runs > limit then
  more = 1
end
for i = 1, math.min(#runs, limit) do
  local run = runs[i]
  local ttl = redis.call('PTTL', base .. 'wr:' .. run)
  if ttl == -2 then
    redis.call('ZREM', KEYS[4], run)
    redis.call('ZREM', KEYS[3], run)
  elseif ttl >= 0 then
    redis.call('ZADD', KEYS[3], int(now + ttl), run)
  else
    -- Kept for good (persisted by hand): it stays listed.
    redis.call('ZREM', KEYS[3], run)
  end
end
count('done', -deleted)
flush_counts()
return { deleted, more }
