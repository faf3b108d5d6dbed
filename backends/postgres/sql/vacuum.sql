-- Removes the dead row versions and index entries that claims and acks left
-- (see src/vacuum.rs); skipped if another VACUUM holds the table.
VACUUM (SKIP_LOCKED) __SCHEMA__.tasks
