-- errand's own record of applied migrations (not sqlx's `_sqlx_migrations`).
CREATE TABLE IF NOT EXISTS `__PREFIX__migrations` (
    version BIGINT NOT NULL,
    description VARCHAR(255) NOT NULL,
    checksum VARCHAR(64) NOT NULL,
    applied_at BIGINT NOT NULL,
    PRIMARY KEY (version)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
