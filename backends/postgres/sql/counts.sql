SELECT queue, state, count(*) FROM __SCHEMA__.tasks GROUP BY queue, state
