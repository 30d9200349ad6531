-- Named leases of background work that one server at a time may do (a key
-- vault's rotation round, a template deployment). until_at is when the
-- lease ends unless its owner renews it.
CREATE TABLE leases (
    name     TEXT PRIMARY KEY,
    owner    TEXT NOT NULL,
    until_at TEXT NOT NULL
);
