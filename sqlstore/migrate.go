package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// Migration is one numbered schema change.
type Migration struct {
	Version int
	Name    string // file name, for the record
	SQL     string
}

// LoadMigrations reads the files NNNN_name.sql at the top of fsys, ordered by
// their number. It returns an error for a file whose name does not start with
// a number, and for two files with the same number.
func LoadMigrations(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("sqlstore: reading migrations: %w", err)
	}
	var ms []Migration
	seen := map[int]string{}
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".sql" {
			continue
		}
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("sqlstore: migration %q is not named NNNN_name.sql", e.Name())
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("sqlstore: migrations %q and %q share version %d", other, e.Name(), v)
		}
		seen[v] = e.Name()
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("sqlstore: reading migration %q: %w", e.Name(), err)
		}
		ms = append(ms, Migration{Version: v, Name: e.Name(), SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	return ms, nil
}

// Migrate applies the migrations in fsys (see LoadMigrations) that the
// schema_migrations table does not list yet, each in its own transaction
// together with its schema_migrations row, so that a restart resumes after
// the last one that committed. When d.MigrateLock is set, everything runs on
// one connection holding that lock, so that processes starting together
// migrate once. Each check of schema_migrations is inside the migration's
// transaction, which on SQLite (BEGIN IMMEDIATE) is enough on its own.
func Migrate(ctx context.Context, db *sql.DB, d Dialect, fsys fs.FS) (err error) {
	ms, err := LoadMigrations(fsys)
	if err != nil {
		return err
	}
	rebind := d.Rebind
	if rebind == nil {
		rebind = func(q string) string { return q }
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	defer conn.Close()
	if d.MigrateLock != "" {
		if _, err := conn.ExecContext(ctx, d.MigrateLock); err != nil {
			return fmt.Errorf("sqlstore: migrate: taking the lock: %w", err)
		}
		defer func() {
			// A fresh context: the lock must go even if ctx has ended, or the
			// session would keep it until the connection closes.
			uctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, uerr := conn.ExecContext(uctx, d.MigrateUnlock); uerr != nil && err == nil {
				err = fmt.Errorf("sqlstore: migrate: releasing the lock: %w", uerr)
			}
		}()
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	for _, m := range ms {
		if err := applyMigration(ctx, conn, rebind, m); err != nil {
			return err
		}
	}
	return nil
}

func applyMigration(ctx context.Context, conn *sql.Conn, rebind func(string) string, m Migration) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlstore: migration %s: %w", m.Name, err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, rebind(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), m.Version).Scan(&n); err != nil {
		return fmt.Errorf("sqlstore: migration %s: %w", m.Name, err)
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return fmt.Errorf("sqlstore: migration %s: %w", m.Name, err)
	}
	if _, err := tx.ExecContext(ctx, rebind(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
		m.Version, m.Name, time.Now().UTC().Format(timeLayout)); err != nil {
		return fmt.Errorf("sqlstore: migration %s: %w", m.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlstore: migration %s: %w", m.Name, err)
	}
	return nil
}

// MigrationError wraps a failed migration as an internal error: the cause
// (SQL included) goes to the log only.
func MigrationError(where string, err error) error {
	if err == nil {
		return nil
	}
	var ke *keyhold.Error
	if errors.As(err, &ke) {
		return err
	}
	return keyhold.Internal(where, err)
}
