-- Cancelled tasks of workers not seen for a while are forgotten by them (no
-- worker is left to tell): ? a JSON array of [id, worker], then ?
-- orphan_after (ms, by the server's clock).
UPDATE JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT PATH '$[0]', worker VARCHAR(255) PATH '$[1]')) AS a
STRAIGHT_JOIN `__PREFIX__tasks` AS t ON t.id = a.id
SET t.worker = NULL, t.claim = NULL
WHERE t.state = 'cancelled' AND t.worker = a.worker
  AND NOT EXISTS (SELECT 1 FROM `__PREFIX__workers` AS w
                  WHERE w.id = a.worker AND w.last_seen >= CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED) - ?);
