// Package sqlite opens a keyhold.Store in a SQLite database file, with the
// pure-Go modernc.org/sqlite driver (no cgo). It is the embedded default
// store of `keyhold serve --data-dir`.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore"
	sqlitedrv "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// maxConns bounds the pool. WAL lets readers run beside the one writer, so a
// few connections help; writers queue on busy_timeout rather than fail.
const maxConns = 8

// busyTimeoutMS is how long a connection waits for another's write lock.
const busyTimeoutMS = 10000

// Dialect is SQLite's sqlstore.Dialect. Writers are serialised by BEGIN
// IMMEDIATE (the _txlock DSN parameter), so the audit head needs no row lock.
var Dialect = sqlstore.Dialect{
	Name: "sqlite",
	// Preparing is a large share of a point query's cost in SQLite.
	PrepareHot: true,
	IsUniqueViolation: func(err error) bool {
		code := errorCode(err)
		return code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	},
	IsForeignKeyViolation: func(err error) bool {
		return errorCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
	},
}

func errorCode(err error) int {
	var e *sqlitedrv.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return 0
}

// Open opens, creating it if needed, the SQLite database file at path and
// brings its schema up to date. A new file is created with mode 0600, since it
// holds sealed secrets and the audit log. The database runs in WAL mode with
// foreign keys on, and every transaction begins IMMEDIATE so that two writers
// never deadlock upgrading their locks; they wait up to a busy timeout
// instead. It returns EInvalid for an empty or in-memory path (each pooled
// connection would see its own empty database) and EInternal if the file
// cannot be opened or migrated.
func Open(ctx context.Context, path string) (keyhold.Store, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, keyhold.Errorf(keyhold.EInvalid, "sqlite: a database file path is required, got %q", path)
	}
	if err := createFile(path); err != nil {
		return nil, keyhold.Internal("sqlite", err)
	}
	db, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		return nil, keyhold.Internal("sqlite", err)
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, keyhold.Internal("sqlite", fmt.Errorf("opening %s: %w", path, err))
	}
	migrations, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		db.Close()
		return nil, keyhold.Internal("sqlite", err)
	}
	if err := sqlstore.Migrate(ctx, db, Dialect, migrations); err != nil {
		db.Close()
		return nil, sqlstore.MigrationError("sqlite", err)
	}
	return sqlstore.New(db, Dialect), nil
}

// createFile creates path with mode 0600 if it does not exist yet, before
// SQLite would create it with the process umask. SQLite gives the -wal and
// -shm files the database file's mode.
func createFile(path string) error {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.Close()
}

func dsn(path string) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	u := url.URL{Scheme: "file", Opaque: (&url.URL{Path: path}).EscapedPath(), RawQuery: q.Encode()}
	return u.String()
}
