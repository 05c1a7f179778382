-- Owners, their tasks, and every attempt of every task.

CREATE TABLE owners (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    key_hash        BLOB NOT NULL,
    created_at      INTEGER NOT NULL,
    -- RUNNING + PAUSED tasks, kept by the triggers below in the same transaction as the change.
    tasks_in_queue  INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE tasks (
    id                    TEXT PRIMARY KEY,
    owner_id              TEXT NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
    state                 TEXT NOT NULL CHECK (state IN ('RUNNING', 'PAUSED', 'SUCCESS', 'ERROR', 'REVOKED')),
    created_at            INTEGER NOT NULL,
    -- When the dispatcher may claim the task: the next attempt's due time, or the end of the
    -- lease while an attempt is in flight; NULL when nothing is to be sent (paused, final).
    due_at                INTEGER,
    claim                 TEXT,
    estimate_execution_at INTEGER NOT NULL,
    estimate_end_at       INTEGER NOT NULL DEFAULT 0,
    status_code           INTEGER NOT NULL DEFAULT 0,
    response              TEXT,
    retry_count           INTEGER NOT NULL DEFAULT 0,
    -- The first attempt is due at an absolute time (executeAt) rather than after a delay.
    absolute              INTEGER NOT NULL DEFAULT 0,
    timeout_ms            INTEGER NOT NULL,
    metadata              TEXT,
    spec                  TEXT NOT NULL,
    delivery              TEXT NOT NULL
) STRICT;

CREATE INDEX tasks_due ON tasks (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX tasks_owner_created ON tasks (owner_id, created_at);

CREATE TABLE attempts (
    task_id      TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    attempt      INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    duration_ms  INTEGER NOT NULL,
    status_code  INTEGER NOT NULL,
    error        TEXT,
    outcome      TEXT NOT NULL
) STRICT;

CREATE INDEX attempts_task ON attempts (task_id, started_at);

CREATE TRIGGER tasks_count_insert AFTER INSERT ON tasks
WHEN NEW.state IN ('RUNNING', 'PAUSED')
BEGIN
    UPDATE owners SET tasks_in_queue = tasks_in_queue + 1 WHERE id = NEW.owner_id;
END;

CREATE TRIGGER tasks_count_delete AFTER DELETE ON tasks
WHEN OLD.state IN ('RUNNING', 'PAUSED')
BEGIN
    UPDATE owners SET tasks_in_queue = tasks_in_queue - 1 WHERE id = OLD.owner_id;
END;

CREATE TRIGGER tasks_count_finish AFTER UPDATE OF state ON tasks
WHEN OLD.state IN ('RUNNING', 'PAUSED') AND NEW.state NOT IN ('RUNNING', 'PAUSED')
BEGIN
    UPDATE owners SET tasks_in_queue = tasks_in_queue - 1 WHERE id = NEW.owner_id;
END;
