-- Retention: deletes the done tasks whose expiry has passed, about `limit`
-- of them per call. A member of `x` lists the seqs (comma separated) of
-- done tasks that expire together (those one ack call finished), scored by
-- when; their fields leave `t`, `s`, `e` and `g`, their done bits are cleared
-- (an emptied bitmap block is deleted) and the `done` count goes down.
-- Finished workflow runs are not here: they expire by themselves.
-- KEYS[1] `x`, KEYS[2] counts.
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
count('done', -deleted)
flush_counts()
return { deleted, more }
