-- Environments: their root-key generations, lifecycle operations, tables,
-- sealed rows and files (sealed in segments). Everything below an
-- environment goes when it goes (ON DELETE CASCADE, and explicit deletes in
-- DeleteEnvironment).

-- policy_key is the linked policy's id lowered in Go, NULL when not linked.
-- Times that may be unset (locked_at, no_revert_until) are stored as the
-- zero time, which sorts first.
CREATE TABLE environments (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL,
    display_name      TEXT NOT NULL,
    region            TEXT NOT NULL,
    type              TEXT NOT NULL,
    managed           INTEGER NOT NULL,
    runtime_state     TEXT NOT NULL,
    lock_reason       TEXT NOT NULL,
    locked_at         TEXT NOT NULL,
    key_managed_by    TEXT NOT NULL,
    policy_id         TEXT NOT NULL,
    policy_key        TEXT,
    policy_system_id  TEXT NOT NULL,
    link_status       TEXT NOT NULL,
    encryption_status TEXT NOT NULL,
    no_revert_until   TEXT NOT NULL,
    created_by        TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    version           INTEGER NOT NULL
);
CREATE INDEX environments_tenant ON environments (tenant_id, id);
CREATE INDEX environments_policy ON environments (policy_key, id);

CREATE TABLE env_generations (
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    generation     INTEGER NOT NULL,
    wrapped        BLOB,
    wrapped_by     TEXT NOT NULL,
    state          TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (environment_id, generation)
);

-- lease_until is the zero time when never leased, so that "lease ran out"
-- is one comparison; env_operations_runnable holds only the operations a
-- worker may pick up.
CREATE TABLE env_operations (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    type           TEXT NOT NULL,
    action         TEXT NOT NULL,
    state          TEXT NOT NULL,
    stages         TEXT,
    params         TEXT,
    resume_cursor  TEXT NOT NULL,
    done           INTEGER NOT NULL,
    total          INTEGER NOT NULL,
    error          TEXT NOT NULL,
    requested_by   TEXT NOT NULL,
    lease_owner    TEXT NOT NULL,
    lease_until    TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX env_operations_environment ON env_operations (environment_id, created_at, id);
CREATE INDEX env_operations_runnable ON env_operations (lease_until, created_at, id)
    WHERE state IN ('NotStarted', 'Running');

CREATE TABLE env_tables (
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    name_key       TEXT NOT NULL,
    name           TEXT NOT NULL,
    display_name   TEXT NOT NULL,
    schema_json    TEXT,
    created_at     TEXT NOT NULL,
    PRIMARY KEY (environment_id, name_key)
);

-- Rows are keyed by the lowered table name; version is the row's ETag,
-- generation the root-key generation sealed is under.
CREATE TABLE env_rows (
    environment_id TEXT NOT NULL,
    table_key      TEXT NOT NULL,
    id             TEXT NOT NULL,
    version        INTEGER NOT NULL,
    generation     INTEGER NOT NULL,
    sealed         BLOB NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (environment_id, table_key, id),
    FOREIGN KEY (environment_id, table_key) REFERENCES env_tables (environment_id, name_key) ON DELETE CASCADE
);
-- For the re-encryption job's counts; its paging walks the primary key.
CREATE INDEX env_rows_generation ON env_rows (environment_id, generation);

-- One row per upload of a file column's value. At most one upload per file
-- is committed (env_files_current); the others are being written and are
-- invisible to readers. Committing swaps the new upload in and deletes the
-- old one in one transaction.
CREATE TABLE env_files (
    upload_id      TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL,
    table_key      TEXT NOT NULL,
    row_id         TEXT NOT NULL,
    column_key     TEXT NOT NULL,
    committed      INTEGER NOT NULL,
    file_name      TEXT NOT NULL,
    content_type   TEXT NOT NULL,
    size           INTEGER NOT NULL,
    segment_size   INTEGER NOT NULL,
    segments       INTEGER NOT NULL,
    version        INTEGER NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    FOREIGN KEY (environment_id, table_key, row_id) REFERENCES env_rows (environment_id, table_key, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX env_files_current ON env_files (environment_id, table_key, row_id, column_key) WHERE committed;
CREATE INDEX env_files_row ON env_files (environment_id, table_key, row_id, column_key);
CREATE INDEX env_files_environment ON env_files (environment_id, upload_id);
CREATE INDEX env_files_pending ON env_files (created_at) WHERE NOT committed;

CREATE TABLE env_file_segments (
    upload_id      TEXT NOT NULL REFERENCES env_files (upload_id) ON DELETE CASCADE,
    seg_index      INTEGER NOT NULL,
    environment_id TEXT NOT NULL,
    generation     INTEGER NOT NULL,
    sealed         BLOB NOT NULL,
    PRIMARY KEY (upload_id, seg_index)
);
CREATE INDEX env_file_segments_generation ON env_file_segments (environment_id, generation, upload_id);
CREATE INDEX env_file_segments_upload_generation ON env_file_segments (upload_id, generation);
