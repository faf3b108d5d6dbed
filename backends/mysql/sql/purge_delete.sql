-- Deletes the done tasks of the JSON array ? of ids.
DELETE t FROM JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT PATH '$')) AS a
STRAIGHT_JOIN `__PREFIX__tasks` AS t ON t.id = a.id
WHERE t.state = 'done';
