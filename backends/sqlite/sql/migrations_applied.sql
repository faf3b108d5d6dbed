SELECT version, description, checksum FROM errand_migrations ORDER BY version
