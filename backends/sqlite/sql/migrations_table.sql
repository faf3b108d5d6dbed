CREATE TABLE IF NOT EXISTS errand_migrations (
    version     INTEGER PRIMARY KEY NOT NULL,
    description TEXT    NOT NULL,
    checksum    TEXT    NOT NULL,
    applied_at  INTEGER NOT NULL
)
