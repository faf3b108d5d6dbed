-- Job ?2 was served on queue ?1 at ?3 (ms, this machine's clock): recorded by
-- every heartbeat, with sql/heartbeat.sql in one transaction. Kept past the
-- worker's own row; never moves back.
INSERT INTO errand_served_jobs (queue, job, last_seen) VALUES (?1, ?2, ?3)
ON CONFLICT (queue, job) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)
