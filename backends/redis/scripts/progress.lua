-- Stores the latest progress of running tasks of one worker.
-- KEYS[1] the worker's in-flight set. ARGV: base, then 2 per task: seq,
-- progress (`<percent>|<message>`, as the backend writes it).
-- A task's progress is written only while it is running for this worker:
-- in its in-flight set and in state `running` (a task cancelled while its
-- worker was not registered stays in the set). Progress of a task acked,
-- rescued, released or cancelled meanwhile is dropped, so a late report
-- never lands on a later attempt (whose claim deleted the old progress).
-- Returns how many tasks' progress it stored.
local seqs, values = {}, {}
for i = 2, #ARGV, 2 do
  seqs[#seqs + 1] = ARGV[i]
  values[#values + 1] = ARGV[i + 1]
end
local writes = {}
for j = 1, #seqs, 2000 do
  local part = { unpack(seqs, j, math.min(j + 1999, #seqs)) }
  local owned = redis.call('SMISMEMBER', KEYS[1], unpack(part))
  local states = redis.call('HMGET', S, unpack(part))
  for k = 1, #part do
    local v = states[k]
    if owned[k] == 1 and v and string.sub(v, 1, 1) == 'r' then
      writes[#writes + 1] = part[k]
      writes[#writes + 1] = values[j + k - 1]
    end
  end
end
chunked('HSET', G, writes)
return #writes / 2
