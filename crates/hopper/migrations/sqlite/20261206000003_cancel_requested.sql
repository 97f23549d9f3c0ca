-- Someone asked the started run of this job to stop (`Hopper::cancel`): the
-- pool holding its claim stops it and ends the job cancelled, and a rescue
-- ends it cancelled too. Every claim clears it.
ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
