-- Resumes a paused queue: deletes its `paused` flag and, if there was one,
-- wakes the queue's idle workers in every process.
-- KEYS[1] the queue's `paused` flag. ARGV: wake channel, queue name.
-- Returns 1 if the queue was paused.
if redis.call('DEL', KEYS[1]) == 0 then
  return 0
end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
