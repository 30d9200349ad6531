package storetest

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// This file holds what the SQL drivers' own tests share: opening one
// database from several "processes" at once and checking what that left.

// OpenAtOnce calls open n times at once, as n processes starting on one
// database would, and returns the stores; it fails the test if any open
// fails. The caller closes the stores.
func OpenAtOnce(t *testing.T, n int, open func() (keyhold.Store, error)) []keyhold.Store {
	t.Helper()
	stores := make([]keyhold.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = open()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			for _, s := range stores {
				if s != nil {
					s.Close()
				}
			}
			t.Fatalf("concurrent Open #%d: %v", i, err)
		}
	}
	return stores
}

// MigratedOnce checks, on a driver's database handle, that schema_migrations
// records each of the n migrations once, the newest being version last, and
// that the audit chain has its one head row.
func MigratedOnce(t *testing.T, db *sql.DB, n, last int) {
	t.Helper()
	ctx := context.Background()
	var rows, max int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&rows, &max); err != nil {
		t.Fatal(err)
	}
	if rows != n || max != last {
		t.Errorf("schema_migrations: %d rows up to %d, want %d up to %d", rows, max, n, last)
	}
	var heads int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM audit_head`).Scan(&heads); err != nil || heads != 1 {
		t.Errorf("audit_head rows: %d (%v), want 1", heads, err)
	}
}

// AuditAcrossStores appends 60 records through a and b, which the driver
// opened separately on one database as two processes would, two writers on
// each at once; the chain each store reads back is whole.
func AuditAcrossStores(t *testing.T, a, b keyhold.Store) {
	t.Helper()
	appendAtOnce(t, []keyhold.Store{a, b, a, b}, 15, func(w, i int) *keyhold.AuditRecord {
		return &keyhold.AuditRecord{Time: time.Now(), RequestID: fmt.Sprintf("%d-%d", w, i)}
	})
	for _, s := range []keyhold.Store{a, b} {
		wholeChain(t, s, 60)
	}
}
