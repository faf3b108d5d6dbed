-- Stores the latest progress of running tasks of worker $1: task ids $2
-- (bigint[]), percents $3 (smallint[]), messages $4 (text[]), one element per
-- task (the backend keeps the last report of each task). Guarded by
-- `state = 'running' AND worker = $1`: a task rescued, released, cancelled or
-- finished meanwhile is not touched. Asynchronous commit, as claims and acks:
-- a report lost in a server crash is only a stale progress bar. The columns
-- are in no index, so this is a HOT update where the page has room.
UPDATE __SCHEMA__.tasks AS t
SET progress_percent = p.percent, progress_message = p.message
FROM UNNEST($2::bigint[], $3::smallint[], $4::text[]) AS p(id, percent, message)
WHERE t.id = p.id AND t.state = 'running' AND t.worker = $1
  AND set_config('synchronous_commit', 'off', true) IS NOT NULL
