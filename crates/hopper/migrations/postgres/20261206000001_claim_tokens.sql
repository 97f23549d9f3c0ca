-- Every claim writes a fencing token of its own; every write that extends,
-- ends or hands back a run names it, so a run whose claim was rescued,
-- released or undone cannot touch a later claim's row. NULL while not started.
ALTER TABLE jobs ADD COLUMN lease_token BIGINT;
-- Whether the claimed run's handler has started. A rescue counts the attempt
-- only then: a job claimed ahead and never started gets its attempt back.
-- Rows started before this column existed count as started.
ALTER TABLE jobs ADD COLUMN run_started BOOLEAN NOT NULL DEFAULT TRUE;
