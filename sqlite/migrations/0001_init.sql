-- Keyhold schema for SQLite. Times are fixed-width UTC text with nanoseconds
-- (see sqlstore.timeLayout); *_key columns hold names lowered in Go for
-- case-insensitive lookups; JSON lives in text columns.

CREATE TABLE tenants (
    id             TEXT PRIMARY KEY,
    display_name   TEXT NOT NULL,
    default_domain TEXT NOT NULL,
    domain_key     TEXT UNIQUE, -- NULL when there is no domain
    created_at     TEXT NOT NULL
);

CREATE TABLE principals (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    type            TEXT NOT NULL,
    display_name    TEXT NOT NULL,
    upn             TEXT NOT NULL,
    upn_key         TEXT UNIQUE, -- NULL for non-users
    app_id          TEXT UNIQUE, -- NULL for users and groups
    resource_id     TEXT NOT NULL,
    resource_key    TEXT,
    directory_roles TEXT NOT NULL,
    disabled        INTEGER NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE INDEX principals_tenant_type ON principals (tenant_id, type);
CREATE INDEX principals_resource ON principals (resource_key);

CREATE TABLE credentials (
    id           TEXT PRIMARY KEY,
    principal_id TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    hash         TEXT NOT NULL,
    hint         TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL
);
CREATE INDEX credentials_principal ON credentials (principal_id, created_at);

CREATE TABLE group_members (
    group_id  TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    member_id TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, member_id)
);
CREATE INDEX group_members_member ON group_members (member_id, group_id);

CREATE TABLE subscriptions (
    id_key       TEXT PRIMARY KEY,
    id           TEXT NOT NULL,
    tenant_id    TEXT NOT NULL,
    display_name TEXT NOT NULL,
    state        TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
CREATE INDEX subscriptions_tenant ON subscriptions (tenant_id, id_key);

CREATE TABLE resource_groups (
    subscription_key      TEXT NOT NULL,
    name_key              TEXT NOT NULL,
    subscription_id       TEXT NOT NULL,
    name                  TEXT NOT NULL,
    location              TEXT NOT NULL,
    tags                  TEXT NOT NULL,
    managed_by            TEXT NOT NULL,
    provisioning_state    TEXT NOT NULL,
    created_by            TEXT NOT NULL,
    created_by_type       TEXT NOT NULL,
    created_at            TEXT NOT NULL,
    last_modified_by      TEXT NOT NULL,
    last_modified_by_type TEXT NOT NULL,
    last_modified_at      TEXT NOT NULL,
    PRIMARY KEY (subscription_key, name_key)
);

CREATE TABLE provider_registrations (
    subscription_key TEXT NOT NULL,
    namespace_key    TEXT NOT NULL,
    subscription_id  TEXT NOT NULL,
    namespace        TEXT NOT NULL,
    state            TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    PRIMARY KEY (subscription_key, namespace_key)
);

CREATE TABLE feature_registrations (
    subscription_key TEXT NOT NULL,
    namespace_key    TEXT NOT NULL,
    name_key         TEXT NOT NULL,
    subscription_id  TEXT NOT NULL,
    namespace        TEXT NOT NULL,
    name             TEXT NOT NULL,
    state            TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    PRIMARY KEY (subscription_key, namespace_key, name_key)
);

CREATE TABLE role_assignments (
    name_key           TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    tenant_id          TEXT NOT NULL,
    scope              TEXT NOT NULL,
    scope_key          TEXT NOT NULL,
    role_definition_id TEXT NOT NULL,
    principal_id       TEXT NOT NULL,
    principal_type     TEXT NOT NULL,
    description        TEXT NOT NULL,
    created_by         TEXT NOT NULL,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
);
CREATE INDEX role_assignments_scope ON role_assignments (scope_key, name_key);
CREATE INDEX role_assignments_principal ON role_assignments (principal_id, scope_key);
CREATE INDEX role_assignments_tenant ON role_assignments (tenant_id, scope_key);

CREATE TABLE resources (
    id_key                TEXT PRIMARY KEY,
    id                    TEXT NOT NULL,
    subscription_key      TEXT NOT NULL,
    subscription_id       TEXT NOT NULL,
    resource_group        TEXT NOT NULL,
    rg_key                TEXT NOT NULL,
    type                  TEXT NOT NULL,
    type_key              TEXT NOT NULL,
    name                  TEXT NOT NULL,
    location              TEXT NOT NULL,
    kind                  TEXT NOT NULL,
    tags                  TEXT NOT NULL,
    sku                   TEXT,
    identity              TEXT,
    properties            TEXT,
    created_by            TEXT NOT NULL,
    created_by_type       TEXT NOT NULL,
    created_at            TEXT NOT NULL,
    last_modified_by      TEXT NOT NULL,
    last_modified_by_type TEXT NOT NULL,
    last_modified_at      TEXT NOT NULL,
    etag                  TEXT NOT NULL
);
CREATE INDEX resources_scope ON resources (subscription_key, rg_key, type_key, id_key);
CREATE INDEX resources_type ON resources (type_key, id_key);
CREATE INDEX resources_group ON resources (rg_key, id_key);

CREATE TABLE audit_log (
    seq            INTEGER PRIMARY KEY,
    time           TEXT NOT NULL,
    tenant_id      TEXT NOT NULL,
    principal_id   TEXT NOT NULL,
    principal_name TEXT NOT NULL,
    action         TEXT NOT NULL,
    method         TEXT NOT NULL,
    scope          TEXT NOT NULL,
    scope_key      TEXT NOT NULL,
    status         INTEGER NOT NULL,
    result         TEXT NOT NULL,
    detail         TEXT NOT NULL,
    request_id     TEXT NOT NULL,
    client_ip      TEXT NOT NULL,
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, seq);
CREATE INDEX audit_log_principal ON audit_log (principal_id, seq);
CREATE INDEX audit_log_scope ON audit_log (scope_key, seq);
CREATE INDEX audit_log_time ON audit_log (time, seq);

-- The head of the audit chain: one row, advanced in the same transaction as
-- each append.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
