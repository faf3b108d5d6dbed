-- Deletes task ? if it is finished (`done`, `dead` or `cancelled`) and is
-- not a workflow step (a step's task goes with its run), with its result,
-- error and progress (columns of its row), and the row of its unique key
-- when that names it as the key's newest task, so that the key is free
-- again. One statement: the task is found by primary key, then its key's
-- row by primary key (the hash `push_unique.sql` writes). Rows affected: 0
-- when nothing was deleted (a live task, a step, an unknown id), else 1 or 2.
DELETE t, k
FROM `__PREFIX__tasks` AS t
LEFT JOIN `__PREFIX__unique_keys` AS k
    ON k.key_hash = UNHEX(SHA2(CONCAT(t.job, CHAR(0), t.unique_key), 256)) AND k.task_id = t.id
WHERE t.id = ? AND t.state IN ('done', 'dead', 'cancelled') AND t.run_id IS NULL;
