-- ?1 version, ?2 description, ?3 checksum, ?4 applied_at (ms).
INSERT INTO errand_migrations (version, description, checksum, applied_at) VALUES (?1, ?2, ?3, ?4)
