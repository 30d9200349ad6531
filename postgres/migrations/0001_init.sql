-- Keyhold schema for PostgreSQL. Times are fixed-width UTC text with
-- nanoseconds (see sqlstore.timeLayout; timestamptz keeps microseconds only);
-- *_key columns hold names lowered in Go for case-insensitive lookups; JSON
-- lives in text columns. All text is COLLATE "C", so that it compares and
-- sorts by bytes as in SQLite, and the scope-prefix range [p/, p0) holds
-- exactly the scopes below p whatever the database's default collation.

CREATE TABLE tenants (
    id             TEXT COLLATE "C" PRIMARY KEY,
    display_name   TEXT COLLATE "C" NOT NULL,
    default_domain TEXT COLLATE "C" NOT NULL,
    domain_key     TEXT COLLATE "C" UNIQUE, -- NULL when there is no domain
    created_at     TEXT COLLATE "C" NOT NULL
);

CREATE TABLE principals (
    id              TEXT COLLATE "C" PRIMARY KEY,
    tenant_id       TEXT COLLATE "C" NOT NULL,
    type            TEXT COLLATE "C" NOT NULL,
    display_name    TEXT COLLATE "C" NOT NULL,
    upn             TEXT COLLATE "C" NOT NULL,
    upn_key         TEXT COLLATE "C" UNIQUE, -- NULL for non-users
    app_id          TEXT COLLATE "C" UNIQUE, -- NULL for users and groups
    resource_id     TEXT COLLATE "C" NOT NULL,
    resource_key    TEXT COLLATE "C",
    directory_roles TEXT COLLATE "C" NOT NULL,
    disabled        BOOLEAN NOT NULL,
    created_at      TEXT COLLATE "C" NOT NULL
);
CREATE INDEX principals_tenant_type ON principals (tenant_id, type);
CREATE INDEX principals_resource ON principals (resource_key);

CREATE TABLE credentials (
    id           TEXT COLLATE "C" PRIMARY KEY,
    principal_id TEXT COLLATE "C" NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    kind         TEXT COLLATE "C" NOT NULL,
    hash         TEXT COLLATE "C" NOT NULL,
    hint         TEXT COLLATE "C" NOT NULL,
    created_at   TEXT COLLATE "C" NOT NULL,
    expires_at   TEXT COLLATE "C" NOT NULL
);
CREATE INDEX credentials_principal ON credentials (principal_id, created_at);

CREATE TABLE group_members (
    group_id  TEXT COLLATE "C" NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    member_id TEXT COLLATE "C" NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, member_id)
);
CREATE INDEX group_members_member ON group_members (member_id, group_id);

CREATE TABLE subscriptions (
    id_key       TEXT COLLATE "C" PRIMARY KEY,
    id           TEXT COLLATE "C" NOT NULL,
    tenant_id    TEXT COLLATE "C" NOT NULL,
    display_name TEXT COLLATE "C" NOT NULL,
    state        TEXT COLLATE "C" NOT NULL,
    created_at   TEXT COLLATE "C" NOT NULL
);
CREATE INDEX subscriptions_tenant ON subscriptions (tenant_id, id_key);

CREATE TABLE resource_groups (
    subscription_key      TEXT COLLATE "C" NOT NULL,
    name_key              TEXT COLLATE "C" NOT NULL,
    subscription_id       TEXT COLLATE "C" NOT NULL,
    name                  TEXT COLLATE "C" NOT NULL,
    location              TEXT COLLATE "C" NOT NULL,
    tags                  TEXT COLLATE "C" NOT NULL,
    managed_by            TEXT COLLATE "C" NOT NULL,
    provisioning_state    TEXT COLLATE "C" NOT NULL,
    created_by            TEXT COLLATE "C" NOT NULL,
    created_by_type       TEXT COLLATE "C" NOT NULL,
    created_at            TEXT COLLATE "C" NOT NULL,
    last_modified_by      TEXT COLLATE "C" NOT NULL,
    last_modified_by_type TEXT COLLATE "C" NOT NULL,
    last_modified_at      TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (subscription_key, name_key)
);

CREATE TABLE provider_registrations (
    subscription_key TEXT COLLATE "C" NOT NULL,
    namespace_key    TEXT COLLATE "C" NOT NULL,
    subscription_id  TEXT COLLATE "C" NOT NULL,
    namespace        TEXT COLLATE "C" NOT NULL,
    state            TEXT COLLATE "C" NOT NULL,
    updated_at       TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (subscription_key, namespace_key)
);

CREATE TABLE feature_registrations (
    subscription_key TEXT COLLATE "C" NOT NULL,
    namespace_key    TEXT COLLATE "C" NOT NULL,
    name_key         TEXT COLLATE "C" NOT NULL,
    subscription_id  TEXT COLLATE "C" NOT NULL,
    namespace        TEXT COLLATE "C" NOT NULL,
    name             TEXT COLLATE "C" NOT NULL,
    state            TEXT COLLATE "C" NOT NULL,
    updated_at       TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (subscription_key, namespace_key, name_key)
);

CREATE TABLE role_assignments (
    name_key           TEXT COLLATE "C" PRIMARY KEY,
    name               TEXT COLLATE "C" NOT NULL,
    tenant_id          TEXT COLLATE "C" NOT NULL,
    scope              TEXT COLLATE "C" NOT NULL,
    scope_key          TEXT COLLATE "C" NOT NULL,
    role_definition_id TEXT COLLATE "C" NOT NULL,
    principal_id       TEXT COLLATE "C" NOT NULL,
    principal_type     TEXT COLLATE "C" NOT NULL,
    description        TEXT COLLATE "C" NOT NULL,
    created_by         TEXT COLLATE "C" NOT NULL,
    created_at         TEXT COLLATE "C" NOT NULL,
    updated_at         TEXT COLLATE "C" NOT NULL
);
CREATE INDEX role_assignments_scope ON role_assignments (scope_key, name_key);
CREATE INDEX role_assignments_principal ON role_assignments (principal_id, scope_key);
CREATE INDEX role_assignments_tenant ON role_assignments (tenant_id, scope_key);

CREATE TABLE resources (
    id_key                TEXT COLLATE "C" PRIMARY KEY,
    id                    TEXT COLLATE "C" NOT NULL,
    subscription_key      TEXT COLLATE "C" NOT NULL,
    subscription_id       TEXT COLLATE "C" NOT NULL,
    resource_group        TEXT COLLATE "C" NOT NULL,
    rg_key                TEXT COLLATE "C" NOT NULL,
    type                  TEXT COLLATE "C" NOT NULL,
    type_key              TEXT COLLATE "C" NOT NULL,
    name                  TEXT COLLATE "C" NOT NULL,
    location              TEXT COLLATE "C" NOT NULL,
    kind                  TEXT COLLATE "C" NOT NULL,
    tags                  TEXT COLLATE "C" NOT NULL,
    sku                   TEXT COLLATE "C",
    identity              TEXT COLLATE "C",
    properties            TEXT COLLATE "C",
    created_by            TEXT COLLATE "C" NOT NULL,
    created_by_type       TEXT COLLATE "C" NOT NULL,
    created_at            TEXT COLLATE "C" NOT NULL,
    last_modified_by      TEXT COLLATE "C" NOT NULL,
    last_modified_by_type TEXT COLLATE "C" NOT NULL,
    last_modified_at      TEXT COLLATE "C" NOT NULL,
    etag                  TEXT COLLATE "C" NOT NULL
);
CREATE INDEX resources_scope ON resources (subscription_key, rg_key, type_key, id_key);
CREATE INDEX resources_type ON resources (type_key, id_key);
CREATE INDEX resources_group ON resources (rg_key, id_key);

CREATE TABLE audit_log (
    seq            BIGINT PRIMARY KEY,
    time           TEXT COLLATE "C" NOT NULL,
    tenant_id      TEXT COLLATE "C" NOT NULL,
    principal_id   TEXT COLLATE "C" NOT NULL,
    principal_name TEXT COLLATE "C" NOT NULL,
    action         TEXT COLLATE "C" NOT NULL,
    method         TEXT COLLATE "C" NOT NULL,
    scope          TEXT COLLATE "C" NOT NULL,
    scope_key      TEXT COLLATE "C" NOT NULL,
    status         INTEGER NOT NULL,
    result         TEXT COLLATE "C" NOT NULL,
    detail         TEXT COLLATE "C" NOT NULL,
    request_id     TEXT COLLATE "C" NOT NULL,
    client_ip      TEXT COLLATE "C" NOT NULL,
    prev_hash      TEXT COLLATE "C" NOT NULL,
    hash           TEXT COLLATE "C" NOT NULL
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, seq);
CREATE INDEX audit_log_principal ON audit_log (principal_id, seq);
CREATE INDEX audit_log_scope ON audit_log (scope_key, seq);
CREATE INDEX audit_log_time ON audit_log (time, seq);

-- The head of the audit chain: one row, advanced in the same transaction as
-- each append.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT COLLATE "C" NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE settings (
    name  TEXT COLLATE "C" PRIMARY KEY,
    value BYTEA NOT NULL
);
