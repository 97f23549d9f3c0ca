-- A release step settles a bounded number of dependents: an ending with
-- more (a wide fan-out) is applied over several steps, each in its own
-- transaction, and its event records the last dependent settled so far
-- (dependents are taken in id order). 0: none yet.
ALTER TABLE dep_events ADD COLUMN settled_through BIGINT NOT NULL DEFAULT 0;
