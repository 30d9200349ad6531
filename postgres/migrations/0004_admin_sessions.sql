-- The web pages' sessions, shared by every server process. id_hash is the
-- hex SHA-256 of the session id the browser holds (the id itself is never
-- stored); sealed is everything else, sealed under the master key with a
-- label bound to id_hash. expires_at is a column so that expired sessions
-- can be swept with one indexed delete.
CREATE TABLE admin_sessions (
    id_hash    TEXT COLLATE "C" PRIMARY KEY,
    sealed     BYTEA NOT NULL,
    expires_at TEXT COLLATE "C" NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    version    BIGINT NOT NULL
);
CREATE INDEX admin_sessions_expires ON admin_sessions (expires_at);
