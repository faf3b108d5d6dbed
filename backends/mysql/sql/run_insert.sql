-- A new workflow run: ? workflow, ? queue, ? steps (the graph as JSON),
-- ? created_at (ms), ? trace (the context every step task carries). Its id
-- is the statement's LAST_INSERT_ID().
INSERT INTO `__PREFIX__runs` (workflow, queue, state, steps, created_at, trace)
VALUES (?, ?, 'running', ?, ?, ?);
