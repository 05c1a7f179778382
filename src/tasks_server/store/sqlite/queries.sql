-- name: insert_owner
INSERT INTO owners (id, name, key_hash, created_at) VALUES (:id, :name, :key_hash, :created_at);

-- name: get_owner
SELECT id, name, key_hash, created_at, tasks_in_queue FROM owners WHERE id = :id;

-- name: delete_owner
DELETE FROM owners WHERE id = :id AND tasks_in_queue = 0;

-- name: recount_owner_tasks
-- Self-healing: the counters follow from the rows.
UPDATE owners SET tasks_in_queue = (
    SELECT count(*) FROM tasks WHERE owner_id = owners.id AND state IN ('RUNNING', 'PAUSED')
);

-- name: insert_task
-- Inserts nothing when the owner is at its limit; the check and the insert are one statement.
INSERT INTO tasks (
    id, owner_id, state, created_at, due_at, estimate_execution_at, absolute, timeout_ms,
    metadata, spec, delivery
)
SELECT :id, :owner_id, 'RUNNING', :created_at, :due_at, :due_at, :absolute, :timeout_ms,
       :metadata, :spec, :delivery
FROM owners WHERE id = :owner_id AND tasks_in_queue < :queue_limit;

-- name: get_task
SELECT * FROM tasks WHERE id = :id AND owner_id = :owner_id;

-- name: update_task
UPDATE tasks SET
    state = :state, due_at = :due_at, claim = :claim,
    estimate_execution_at = :estimate_execution_at, estimate_end_at = :estimate_end_at,
    status_code = :status_code, response = :response, retry_count = :retry_count,
    absolute = :absolute, timeout_ms = :timeout_ms, metadata = :metadata, spec = :spec,
    delivery = :delivery
WHERE id = :id;

-- name: delete_task
DELETE FROM tasks WHERE id = :id AND owner_id = :owner_id;

-- name: claim_due
-- The lease: a claimed task is due again when its attempt should long have ended.
UPDATE tasks SET
    due_at = :now + timeout_ms + :lease_margin_ms,
    claim = :claim,
    first_attempt_at = coalesce(first_attempt_at, :now)
WHERE id IN (
    SELECT id FROM tasks WHERE due_at <= :now ORDER BY due_at LIMIT :limit
)
RETURNING id, owner_id, retry_count, estimate_execution_at, delivery, first_attempt_at;

-- name: next_due
SELECT min(due_at) FROM tasks WHERE due_at IS NOT NULL;

-- name: record_attempt_result
UPDATE tasks SET
    state = :state, due_at = :due_at, claim = NULL,
    estimate_execution_at = coalesce(:due_at, estimate_execution_at),
    estimate_end_at = :estimate_end_at, status_code = :status_code, response = :response,
    retry_count = :retry_count
WHERE id = :id AND claim = :claim;

-- name: insert_attempt
INSERT INTO attempts (task_id, attempt, started_at, duration_ms, status_code, error, outcome)
SELECT :id, :attempt, :started_at, :duration_ms, :status_code, :error, :outcome
WHERE EXISTS (SELECT 1 FROM tasks WHERE id = :id);

-- name: list_attempts
SELECT attempt, started_at, duration_ms, status_code, error, outcome
FROM attempts WHERE task_id = :id ORDER BY started_at, rowid;

-- name: release_claims
-- At start, on a single node: whatever an earlier process had in flight is due again now.
UPDATE tasks SET due_at = min(estimate_execution_at, :now), claim = NULL
WHERE claim IS NOT NULL AND state = 'RUNNING';

-- name: list_tasks
-- {state_filter}, {order} and {direction} are filled from fixed choices, never from input.
SELECT * FROM tasks WHERE owner_id = :owner_id {state_filter}
ORDER BY {order} {direction}, id {direction} LIMIT :limit OFFSET :offset;

-- name: insert_signing_secret
INSERT INTO signing_secrets (owner_id, secret, created_at) VALUES (:owner_id, :secret, :now);

-- name: expire_signing_secrets
-- Rotation: the secrets that sign now keep signing until the overlap ends.
UPDATE signing_secrets SET expires_at = :expires_at
WHERE owner_id = :owner_id AND (expires_at IS NULL OR expires_at > :expires_at);

-- name: active_signing_secrets
SELECT secret, created_at, expires_at FROM signing_secrets
WHERE owner_id = :owner_id AND (expires_at IS NULL OR expires_at > :now)
ORDER BY created_at DESC, rowid DESC;

-- name: drop_expired_signing_secrets
DELETE FROM signing_secrets WHERE owner_id = :owner_id AND expires_at <= :now;

-- name: signing_secrets_of
-- The secrets that sign for the owners of a claimed batch (:owner_ids is a JSON array).
SELECT owner_id, secret FROM signing_secrets
WHERE owner_id IN (SELECT value FROM json_each(:owner_ids))
  AND (expires_at IS NULL OR expires_at > :now)
ORDER BY created_at DESC, rowid DESC;
