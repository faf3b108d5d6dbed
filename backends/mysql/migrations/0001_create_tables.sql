-- errand's tables for MySQL 8.0+ / MariaDB 10.6+ (see the crate docs, "Schema").
-- Every statement ends with `;` at the end of a line; they run one at a time
-- (MySQL commits each DDL statement on its own, so each is idempotent).
--
-- tasks: one row per task, whatever its state. InnoDB has no partial
-- indexes, so every index leads with what a statement looks for and keeps
-- finished rows out of the live ranges:
-- - tasks_claim (queue, job, waiting, neg_priority, run_at [, id]): claims
--   walk the `waiting = 1` range (pending and retry rows only) in claim
--   order; finished and running rows are in the `waiting = 0` range, which
--   no claim reads, however many there are. `neg_priority` is -priority, so
--   the order is ascending on every column (MariaDB before 10.8 ignores DESC
--   in index definitions). An ack that finishes a task changes neither
--   column, so it does not touch this index at all.
-- - tasks_held (state, worker, claim, queue [, id]): what workers hold, and
--   everything else by state and queue. A running task has its worker and
--   its claim's token (a claim's rows are read back by them; a worker's
--   running or cancelled tasks are found by them); every other row has both
--   NULL, so `state = ? AND worker IS NULL AND claim IS NULL AND queue = ?`
--   is one range in id order (listings, retention). One index for both
--   saves a claim and an ack one index change each.
-- No other index: every index costs every insert (a bulk enqueue writes an
-- entry in each), so unique keys live in a table of their own (unique_keys)
-- and a run's step tasks are found through run_steps.
CREATE TABLE IF NOT EXISTS `__PREFIX__tasks` (
    id BIGINT NOT NULL AUTO_INCREMENT,
    queue VARCHAR(255) NOT NULL,
    job VARCHAR(255) NOT NULL,
    state VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT 'pending',
    payload LONGBLOB NOT NULL,
    result LONGBLOB NULL,
    attempt INT NOT NULL DEFAULT 0,
    max_attempts INT NOT NULL,
    priority SMALLINT NOT NULL DEFAULT 0,
    run_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    started_at BIGINT NULL,
    finished_at BIGINT NULL,
    unique_key TEXT NULL,
    last_error MEDIUMTEXT NULL,
    worker VARCHAR(255) NULL,
    claim BIGINT NULL,
    run_id BIGINT NULL,
    step INT NULL,
    waiting TINYINT AS (state IN ('pending', 'retry')) STORED,
    neg_priority INT AS (-priority) STORED,
    PRIMARY KEY (id),
    KEY tasks_claim (queue, job, waiting, neg_priority, run_at),
    KEY tasks_held (state, worker, claim, queue)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
-- unique_keys: one row per job and unique key (`key_hash`, the SHA-256 of
-- the job's name, a NUL and the key), naming the newest task enqueued with
-- it and when. An enqueue with a key locks its row first (creating it if
-- missing), so enqueues of one key serialise in every process, committed
-- or not; retention deletes rows whose task is no longer live, once older
-- than the retention (unique_keys_created).
CREATE TABLE IF NOT EXISTS `__PREFIX__unique_keys` (
    key_hash BINARY(32) NOT NULL,
    task_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (key_hash),
    KEY unique_keys_created (created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
-- workers: one row per live worker, `last_seen` by the server's clock (ms).
CREATE TABLE IF NOT EXISTS `__PREFIX__workers` (
    id VARCHAR(255) NOT NULL,
    queue VARCHAR(255) NOT NULL,
    job VARCHAR(255) NOT NULL,
    concurrency INT NOT NULL,
    started_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    PRIMARY KEY (id),
    KEY workers_seen (last_seen)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
-- served_jobs: when a worker of each job last beat on each queue (server
-- clock, ms), kept past the workers' own rows: what "unserved" is judged by.
CREATE TABLE IF NOT EXISTS `__PREFIX__served_jobs` (
    queue VARCHAR(255) NOT NULL,
    job VARCHAR(255) NOT NULL,
    last_seen BIGINT NOT NULL,
    PRIMARY KEY (queue, job)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
-- runs: one row per workflow run; `steps` is the graph as JSON text.
CREATE TABLE IF NOT EXISTS `__PREFIX__runs` (
    id BIGINT NOT NULL AUTO_INCREMENT,
    workflow VARCHAR(255) NOT NULL,
    queue VARCHAR(255) NOT NULL,
    state VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    steps LONGTEXT NOT NULL,
    error MEDIUMTEXT NULL,
    created_at BIGINT NOT NULL,
    finished_at BIGINT NULL,
    PRIMARY KEY (id),
    KEY runs_finished (finished_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
-- run_steps: one row per step of a run that has (or had) a task, with the
-- step's output once it is done: each step's output is stored here only.
CREATE TABLE IF NOT EXISTS `__PREFIX__run_steps` (
    run_id BIGINT NOT NULL,
    step INT NOT NULL,
    task_id BIGINT NULL,
    output LONGBLOB NULL,
    PRIMARY KEY (run_id, step)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
