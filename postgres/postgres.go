// Package postgres opens a keyhold.Store in a PostgreSQL database with pgx,
// for `keyhold serve --database-url` and for several processes sharing one
// database.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrateLockID names the advisory lock held while migrating: any constant
// works as long as every Keyhold process uses the same one.
const migrateLockID = 0x6b6579686f6c64 // "keyhold"

// Pool limits: enough for concurrent requests, without starving a shared
// server of connections when several processes run.
const (
	maxOpenConns    = 20
	maxIdleConns    = 10
	connMaxIdleTime = 5 * time.Minute
)

// Dialect is PostgreSQL's sqlstore.Dialect: $n placeholders, SQLSTATE error
// classes, a row lock on the audit head, SKIP LOCKED for leasing operations,
// batch updates in one statement and an advisory lock around migrations.
var Dialect = sqlstore.Dialect{
	Name:                  "postgres",
	Rebind:                sqlstore.RebindDollar,
	IsUniqueViolation:     func(err error) bool { return sqlState(err) == "23505" },
	IsForeignKeyViolation: func(err error) bool { return sqlState(err) == "23503" },
	LockAuditHead:         " FOR UPDATE",
	SkipLocked:            " FOR UPDATE SKIP LOCKED",
	BatchBlobType:         "BYTEA",
	MigrateLock:           fmt.Sprintf("SELECT pg_advisory_lock(%d)", migrateLockID),
	MigrateUnlock:         fmt.Sprintf("SELECT pg_advisory_unlock(%d)", migrateLockID),
}

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// Open connects to the PostgreSQL database at url (a postgres:// URL or a
// key=value DSN, as pgx reads them; runtime parameters such as search_path
// may be given in it) and brings the schema up to date. Processes starting
// together migrate once: the migrations run under an advisory lock. It
// returns EInvalid for an empty or unparsable url, EUnavailable if the
// server cannot be reached, and EInternal if migrating fails. The url, which
// may hold a password, never appears in an error message.
func Open(ctx context.Context, url string) (keyhold.Store, error) {
	if url == "" {
		return nil, keyhold.Errorf(keyhold.EInvalid, "postgres: a database URL is required")
	}
	if _, err := pgconn.ParseConfig(url); err != nil {
		// pgx's message may quote the URL, password included: log-only.
		return nil, &keyhold.Error{Code: keyhold.EInvalid, Message: "postgres: the database URL is not valid",
			Err: errors.New("cannot parse the database URL")}
	}
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, keyhold.Internal("postgres", err)
	}
	db.SetMaxOpenConns(maxOpenConns)
	db.SetMaxIdleConns(maxIdleConns)
	db.SetConnMaxIdleTime(connMaxIdleTime)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, &keyhold.Error{Code: keyhold.EUnavailable, Message: "postgres: cannot reach the database", Err: err}
	}
	migrations, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		db.Close()
		return nil, keyhold.Internal("postgres", err)
	}
	if err := sqlstore.Migrate(ctx, db, Dialect, migrations); err != nil {
		db.Close()
		return nil, sqlstore.MigrationError("postgres", err)
	}
	return sqlstore.New(db, Dialect), nil
}
