-- Per-owner secrets that sign outgoing requests; expires_at is NULL for the current one.

CREATE TABLE signing_secrets (
    owner_id    TEXT NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
    secret      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER
) STRICT;

CREATE INDEX signing_secrets_owner ON signing_secrets (owner_id);
