-- Serialises enqueues of the same unique keys until the transaction ends.
-- $1: sorted lock ids (so two batches never deadlock).
SELECT count(pg_advisory_xact_lock(k)) FROM UNNEST($1::bigint[]) AS k
