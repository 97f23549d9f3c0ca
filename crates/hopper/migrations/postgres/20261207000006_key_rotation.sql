-- Claims go round a queue's ready keys in key order, from the last key a
-- claim passed (`queues.key_cursor`), instead of giving every key they
-- serve a new turn: a claim writes one cursor, not a row per key.
-- `queue_keys.turn` and `queues.key_turn` are no longer read or written;
-- they stay so a process of the previous release keeps claiming while a
-- rolling upgrade runs.
ALTER TABLE queues ADD COLUMN key_cursor TEXT NOT NULL DEFAULT '';
DROP INDEX queue_keys_ready;
CREATE INDEX queue_keys_round ON queue_keys (queue, partition_key) WHERE ready;

-- A key's row is written once per transaction: a bulk dispatch marks its
-- keys before inserting, and the insert trigger of each of its jobs then
-- finds the row already written by the same transaction and leaves it.
-- One write is enough for the claim's check that a key went idle (its
-- `version` moved, or its row is locked), and a bulk dispatch of 20,000
-- jobs over 1,000 keys leaves 1,000 row versions instead of 21,000 for
-- claims to step over until the table is vacuumed.
CREATE OR REPLACE FUNCTION hopper_key_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queue_keys (queue, partition_key) VALUES (NEW.queue, NEW.partition_key)
    ON CONFLICT (queue, partition_key)
    DO UPDATE SET ready = TRUE, version = queue_keys.version + 1
        WHERE queue_keys.xmin <> pg_current_xact_id()::xid;
    RETURN NULL;
END
$$;
