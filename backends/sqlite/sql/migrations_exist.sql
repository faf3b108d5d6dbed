-- Whether the record of applied migrations exists (1), without creating it.
SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'errand_migrations'
