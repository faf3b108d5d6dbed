-- What the backend needs to know of the server: its version (SKIP LOCKED
-- needs MySQL 8.0 or MariaDB 10.6), the step between auto-increment ids
-- (bulk enqueues on MySQL derive their ids from it) and the largest packet
-- it accepts (bulk enqueues are cut to fit).
SELECT VERSION() AS version,
       CAST(@@auto_increment_increment AS SIGNED) AS id_step,
       CAST(@@max_allowed_packet AS SIGNED) AS max_packet;
