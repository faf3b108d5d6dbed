-- Workflow runs finished before ? (ms), oldest first, at most ?: through
-- runs_finished (NULL while a run is running).
SELECT id FROM `__PREFIX__runs` WHERE finished_at < ? ORDER BY finished_at LIMIT ?;
