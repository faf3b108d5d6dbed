-- Tasks cancelled while running for worker $1.
SELECT id FROM __SCHEMA__.tasks WHERE state = 'cancelled' AND worker = $1
