-- Tasks cancelled while running for worker ?.
SELECT id FROM `__PREFIX__tasks` WHERE worker = ? AND state = 'cancelled';
