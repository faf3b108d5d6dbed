-- Registers a queue name and returns its number (the high bits of its ids).
-- KEYS[1] queues (name -> number), KEYS[2] queue-ids (number -> name),
-- KEYS[3] queue-seq. ARGV[1] the queue's name.
local n = redis.call('HGET', KEYS[1], ARGV[1])
if n then
  return tonumber(n)
end
-- Checked before the first write.
if (tonumber(redis.call('GET', KEYS[3]) or '0') or 0) >= 16777215 then
  return redis.error_reply('ERR errand: more than 16777215 queues under this prefix')
end
n = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], ARGV[1], n)
redis.call('HSET', KEYS[2], n, ARGV[1])
return n
