DELETE FROM errand_workers WHERE last_seen < ?1
