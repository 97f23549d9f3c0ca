-- What a job's handler returned (`JobContext::set_output`), as JSON text:
-- set only when the job finishes. The latest progress its runs reported
-- (`JobContext::progress`): a percentage (0 to 100) and a message, kept
-- across retries.
ALTER TABLE jobs ADD COLUMN output TEXT;
ALTER TABLE jobs ADD COLUMN progress SMALLINT;
ALTER TABLE jobs ADD COLUMN progress_message TEXT;
