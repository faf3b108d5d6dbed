-- Writes new tasks of one queue. KEYS[1] seq, KEYS[2] counts, KEYS[3] jobs.
-- ARGV: base, now, wake channel, queue name, number of tasks, then groups
-- of tasks that share their settings: count, job, priority, due now
-- ('1'/'0'), unique key ('' for none; scoped to the job; a group with one
-- has one task), unique window in ms, then 2 per task: its record (see
-- common.lua), run_at (13 digits).
-- Returns the seq of each task, in order: the new task's, or the live (or
-- recent) duplicate's. Ids are taken with one INCRBY, so a duplicate leaves
-- a gap in the sequence.
local now = tonumber(ARGV[2])
local n = tonumber(ARGV[5])
local seq = redis.call('INCRBY', KEYS[1], n) - n
local out = {}
local created = 0
local records = {} -- seq, record, ...
local ready = {} -- job -> {score, member, ...}
local jobs = {}
local ZEROS = '000000000000'
local i = 6
while i <= #ARGV do
  local count, job, priority = tonumber(ARGV[i]), ARGV[i + 1], ARGV[i + 2]
  local due, ukey, ufor = ARGV[i + 3] == '1', ARGV[i + 4], tonumber(ARGV[i + 5])
  i = i + 6
  local batch = ready[job]
  if not batch then
    batch = {}
    ready[job] = batch
    jobs[#jobs + 1] = job
  end
  local score = string.format('%d', -tonumber(priority))
  for _ = 1, count do
    local rec, run_at = ARGV[i], ARGV[i + 1]
    i = i + 2
    seq = seq + 1
    -- '%d' formats an integer; a Lua number passed to redis.call (or
    -- tostring) goes through the much slower float formatting.
    local id = string.format('%d', seq)
    local dup = nil
    if ukey ~= '' then
      local existing = redis.call('GET', base .. 'u:' .. job .. ':' .. ukey)
      if existing then
        local held = redis.call('HGET', T, existing)
        if held then
          local state = parse_state(redis.call('HGET', S, existing))
          -- A holder whose record cannot be read counts while it is live.
          local t = try_record(held)
          if is_live(state) or (t and ufor > 0 and t.created >= now - ufor) then
            dup = existing
          end
        end
      end
    end
    if dup then
      out[#out + 1] = tonumber(dup)
    else
      if ukey ~= '' then
        -- Written at once, so that a duplicate later in this call finds it.
        redis.call('HSET', T, id, rec)
        redis.call('SET', base .. 'u:' .. job .. ':' .. ukey, id)
      else
        local r = #records
        records[r + 1] = id
        records[r + 2] = rec
      end
      if due then
        local b = #batch
        batch[b + 1] = score
        if #id <= 12 then
          batch[b + 2] = run_at .. string.sub(ZEROS .. id, -12)
        else
          batch[b + 2] = run_at .. id -- seqs of 13 digits (see `seq_of`)
        end
      else
        redis.call('ZADD', base .. 'd:' .. job, run_at, id)
      end
      created = created + 1
      out[#out + 1] = seq
    end
  end
end
chunked('HSET', T, records)
for _, job in ipairs(jobs) do
  chunked('ZADD', base .. 'r:' .. job, ready[job])
end
if created > 0 then
  redis.call('SADD', KEYS[3], unpack(jobs))
  count('pending', created)
  flush_counts()
  redis.call('PUBLISH', ARGV[3], ARGV[4])
end
return out
