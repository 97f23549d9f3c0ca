-- Unique keys of any length. The live-key index held the key itself in a
-- VARCHAR(255): a longer key was refused under strict mode and cut short
-- without it, so two keys sharing their first 255 characters collided. It now
-- holds the key's SHA-256, and the key is TEXT.
ALTER TABLE jobs DROP INDEX jobs_live_key, DROP COLUMN live_key;
ALTER TABLE jobs MODIFY unique_key TEXT NULL;
ALTER TABLE jobs
    ADD COLUMN live_key BINARY(32)
        AS (IF(state IN ('pending', 'started'), UNHEX(SHA2(unique_key, 256)), NULL)) STORED,
    ADD UNIQUE KEY jobs_live_key (live_key);
