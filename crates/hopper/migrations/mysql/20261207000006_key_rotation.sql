-- Claims go round a queue's ready keys in key order, from the last key a
-- claim passed (`queues.key_cursor`), instead of giving every key they
-- serve a new turn: a claim writes one cursor, not a row per key.
-- `queue_keys.turn` and `queues.key_turn` are no longer read or written;
-- they stay so a process of the previous release keeps claiming while a
-- rolling upgrade runs.
ALTER TABLE queues ADD COLUMN key_cursor VARCHAR(255) NOT NULL DEFAULT '';
ALTER TABLE queue_keys DROP INDEX queue_keys_ready, ADD INDEX queue_keys_round (queue, ready, partition_key);
