SELECT version, description, checksum FROM `__PREFIX__migrations` ORDER BY version;
