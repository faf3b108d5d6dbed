CREATE TABLE IF NOT EXISTS __SCHEMA__.migrations (
    version     bigint PRIMARY KEY,
    description text   NOT NULL,
    checksum    text   NOT NULL,
    applied_at  bigint NOT NULL
)
