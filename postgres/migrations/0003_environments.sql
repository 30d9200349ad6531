-- Environments: their root-key generations, lifecycle operations, tables,
-- sealed rows and files (sealed in segments). Everything below an
-- environment goes when it goes (ON DELETE CASCADE, and explicit deletes in
-- DeleteEnvironment).

-- policy_key is the linked policy's id lowered in Go, NULL when not linked.
-- Times that may be unset (locked_at, no_revert_until) are stored as the
-- zero time, which sorts first.
CREATE TABLE environments (
    id                TEXT COLLATE "C" PRIMARY KEY,
    tenant_id         TEXT COLLATE "C" NOT NULL,
    display_name      TEXT COLLATE "C" NOT NULL,
    region            TEXT COLLATE "C" NOT NULL,
    type              TEXT COLLATE "C" NOT NULL,
    managed           BOOLEAN NOT NULL,
    runtime_state     TEXT COLLATE "C" NOT NULL,
    lock_reason       TEXT COLLATE "C" NOT NULL,
    locked_at         TEXT COLLATE "C" NOT NULL,
    key_managed_by    TEXT COLLATE "C" NOT NULL,
    policy_id         TEXT COLLATE "C" NOT NULL,
    policy_key        TEXT COLLATE "C",
    policy_system_id  TEXT COLLATE "C" NOT NULL,
    link_status       TEXT COLLATE "C" NOT NULL,
    encryption_status TEXT COLLATE "C" NOT NULL,
    no_revert_until   TEXT COLLATE "C" NOT NULL,
    created_by        TEXT COLLATE "C" NOT NULL,
    created_at        TEXT COLLATE "C" NOT NULL,
    updated_at        TEXT COLLATE "C" NOT NULL,
    version           BIGINT NOT NULL
);
CREATE INDEX environments_tenant ON environments (tenant_id, id);
CREATE INDEX environments_policy ON environments (policy_key, id);

CREATE TABLE env_generations (
    environment_id TEXT COLLATE "C" NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    generation     BIGINT NOT NULL,
    wrapped        BYTEA,
    wrapped_by     TEXT COLLATE "C" NOT NULL,
    state          TEXT COLLATE "C" NOT NULL,
    created_at     TEXT COLLATE "C" NOT NULL,
    updated_at     TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (environment_id, generation)
);

-- lease_until is the zero time when never leased, so that "lease ran out"
-- is one comparison; env_operations_runnable holds only the operations a
-- worker may pick up.
CREATE TABLE env_operations (
    id             TEXT COLLATE "C" PRIMARY KEY,
    tenant_id      TEXT COLLATE "C" NOT NULL,
    environment_id TEXT COLLATE "C" NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    type           TEXT COLLATE "C" NOT NULL,
    action         TEXT COLLATE "C" NOT NULL,
    state          TEXT COLLATE "C" NOT NULL,
    stages         TEXT COLLATE "C",
    params         TEXT COLLATE "C",
    resume_cursor  TEXT COLLATE "C" NOT NULL,
    done           BIGINT NOT NULL,
    total          BIGINT NOT NULL,
    error          TEXT COLLATE "C" NOT NULL,
    requested_by   TEXT COLLATE "C" NOT NULL,
    lease_owner    TEXT COLLATE "C" NOT NULL,
    lease_until    TEXT COLLATE "C" NOT NULL,
    created_at     TEXT COLLATE "C" NOT NULL,
    updated_at     TEXT COLLATE "C" NOT NULL
);
CREATE INDEX env_operations_environment ON env_operations (environment_id, created_at, id);
CREATE INDEX env_operations_runnable ON env_operations (lease_until, created_at, id)
    WHERE state IN ('NotStarted', 'Running');

CREATE TABLE env_tables (
    environment_id TEXT COLLATE "C" NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    name_key       TEXT COLLATE "C" NOT NULL,
    name           TEXT COLLATE "C" NOT NULL,
    display_name   TEXT COLLATE "C" NOT NULL,
    schema_json    TEXT COLLATE "C",
    created_at     TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (environment_id, name_key)
);

-- Rows are keyed by the lowered table name; version is the row's ETag,
-- generation the root-key generation sealed is under.
CREATE TABLE env_rows (
    environment_id TEXT COLLATE "C" NOT NULL,
    table_key      TEXT COLLATE "C" NOT NULL,
    id             TEXT COLLATE "C" NOT NULL,
    version        BIGINT NOT NULL,
    generation     BIGINT NOT NULL,
    sealed         BYTEA NOT NULL,
    created_at     TEXT COLLATE "C" NOT NULL,
    updated_at     TEXT COLLATE "C" NOT NULL,
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
    upload_id      TEXT COLLATE "C" PRIMARY KEY,
    environment_id TEXT COLLATE "C" NOT NULL,
    table_key      TEXT COLLATE "C" NOT NULL,
    row_id         TEXT COLLATE "C" NOT NULL,
    column_key     TEXT COLLATE "C" NOT NULL,
    committed      BOOLEAN NOT NULL,
    file_name      TEXT COLLATE "C" NOT NULL,
    content_type   TEXT COLLATE "C" NOT NULL,
    size           BIGINT NOT NULL,
    segment_size   BIGINT NOT NULL,
    segments       BIGINT NOT NULL,
    version        BIGINT NOT NULL,
    created_at     TEXT COLLATE "C" NOT NULL,
    updated_at     TEXT COLLATE "C" NOT NULL,
    FOREIGN KEY (environment_id, table_key, row_id) REFERENCES env_rows (environment_id, table_key, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX env_files_current ON env_files (environment_id, table_key, row_id, column_key) WHERE committed;
CREATE INDEX env_files_row ON env_files (environment_id, table_key, row_id, column_key);
CREATE INDEX env_files_environment ON env_files (environment_id, upload_id);
CREATE INDEX env_files_pending ON env_files (created_at) WHERE NOT committed;

CREATE TABLE env_file_segments (
    upload_id      TEXT COLLATE "C" NOT NULL REFERENCES env_files (upload_id) ON DELETE CASCADE,
    seg_index      BIGINT NOT NULL,
    environment_id TEXT COLLATE "C" NOT NULL,
    generation     BIGINT NOT NULL,
    sealed         BYTEA NOT NULL,
    PRIMARY KEY (upload_id, seg_index)
);
CREATE INDEX env_file_segments_generation ON env_file_segments (environment_id, generation, upload_id);
CREATE INDEX env_file_segments_upload_generation ON env_file_segments (upload_id, generation);

-- Sealed bytes do not compress: store them out of line without trying.
ALTER TABLE env_rows ALTER COLUMN sealed SET STORAGE EXTERNAL;
ALTER TABLE env_file_segments ALTER COLUMN sealed SET STORAGE EXTERNAL;
