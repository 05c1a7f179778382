-- When a task's first attempt was claimed: retryPolicy.maxRetryDuration counts from it.

ALTER TABLE tasks ADD COLUMN first_attempt_at INTEGER;
