SELECT step, output FROM errand_run_steps WHERE run_id = ?1 AND output IS NOT NULL
