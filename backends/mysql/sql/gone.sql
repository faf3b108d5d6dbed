-- Forgets the workers not seen for ? ms (server clock).
DELETE FROM `__PREFIX__workers` WHERE last_seen < CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED) - ?;
