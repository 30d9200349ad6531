-- Keys of built-in vaults, their versions and rotation policies; and a name
-- column on resources, because the Key Vault data plane finds a vault by name
-- (vault names are unique on a server) on every request.

-- The name key of resources written before this migration is lowered with
-- SQL lower(), which folds ASCII only; Go's strings.ToLower agrees with it
-- there, and ARM names of the types Keyhold serves (vaults, policies) are
-- ASCII. Every later PutResource writes the key lowered in Go.
ALTER TABLE resources ADD COLUMN name_key TEXT NOT NULL DEFAULT '';
UPDATE resources SET name_key = lower(name);
CREATE INDEX resources_name ON resources (name_key, type_key, id_key);

-- One row per key: the names as first created, and the soft-delete state,
-- which covers every version at once. Deleted keys are deleted_at IS NOT NULL.
CREATE TABLE vault_keys (
    vault_key  TEXT NOT NULL,
    name_key   TEXT NOT NULL,
    vault_name TEXT NOT NULL,
    name       TEXT NOT NULL,
    deleted_at TEXT,
    purge_at   TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (vault_key, name_key)
);

-- seq orders versions: the latest version of a key is its highest seq. It
-- is the rowid, so a new version always gets a number above every existing
-- one.
CREATE TABLE key_versions (
    seq            INTEGER PRIMARY KEY,
    vault_key      TEXT NOT NULL,
    name_key       TEXT NOT NULL,
    version        TEXT NOT NULL,
    version_key    TEXT NOT NULL,
    kty            TEXT NOT NULL,
    key_size       INTEGER NOT NULL,
    crv            TEXT NOT NULL,
    key_ops        TEXT NOT NULL,
    public_jwk     TEXT,
    sealed_private BLOB,
    enabled        INTEGER NOT NULL,
    nbf            TEXT, -- NULL when unset
    exp            TEXT, -- NULL when unset
    exportable     INTEGER NOT NULL,
    tags           TEXT NOT NULL,
    managed        INTEGER NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    FOREIGN KEY (vault_key, name_key) REFERENCES vault_keys (vault_key, name_key) ON DELETE CASCADE
);
CREATE UNIQUE INDEX key_versions_version ON key_versions (vault_key, name_key, version_key);
CREATE INDEX key_versions_seq ON key_versions (vault_key, name_key, seq);

CREATE TABLE key_rotation_policies (
    vault_key  TEXT NOT NULL,
    name_key   TEXT NOT NULL,
    vault_name TEXT NOT NULL,
    name       TEXT NOT NULL,
    policy     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (vault_key, name_key),
    FOREIGN KEY (vault_key, name_key) REFERENCES vault_keys (vault_key, name_key) ON DELETE CASCADE
);
