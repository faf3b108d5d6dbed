-- Claims whose tokens are in the JSON array ?, of worker ?, failed after
-- reaching the server (the reply was lost): whatever they took was never
-- run, so it goes back to pending without using an attempt.
UPDATE JSON_TABLE(?, '$[*]' COLUMNS (token BIGINT PATH '$')) AS a
STRAIGHT_JOIN `__PREFIX__tasks` AS t ON t.state = 'running' AND t.worker = ? AND t.claim = a.token
SET t.attempt = GREATEST(t.attempt - 1, 0), t.state = 'pending', t.worker = NULL, t.claim = NULL;
