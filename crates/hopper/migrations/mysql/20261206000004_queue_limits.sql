-- The most jobs of the queue that may be started at once across every
-- process sharing the database (NULL: no limit). Claims count the queue's
-- started jobs under it; a killed process's share comes back when its
-- leases run out and its jobs are rescued.
ALTER TABLE queues ADD COLUMN concurrency_limit INT NULL;
