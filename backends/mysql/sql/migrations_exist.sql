-- Whether the record of applied migrations exists (without creating it, as
-- migrations_table.sql would): 0 on a database errand never migrated.
-- Column: n.
SELECT COUNT(*) AS n FROM information_schema.tables
WHERE table_schema = DATABASE() AND table_name = '__PREFIX__migrations';
