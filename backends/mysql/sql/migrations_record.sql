-- ? version, ? description, ? checksum, ? applied_at (ms).
INSERT INTO `__PREFIX__migrations` (version, description, checksum, applied_at) VALUES (?, ?, ?, ?);
