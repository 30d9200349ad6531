package postgres_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/internal/unitenv"
	"github.com/keyhold/keyhold/postgres"
	"github.com/keyhold/keyhold/sqlstore"
	"github.com/keyhold/keyhold/storetest"
)

// freshSchema returns a URL whose every connection uses a schema of its
// own, dropped when the test ends, so that parallel test runs on one
// database never see each other's tables; it skips the test without a
// database, except in CI, where PostgreSQL tests are required.
func freshSchema(t testing.TB) string {
	t.Helper()
	u, _, _ := unitenv.PostgresSchema(t)
	return u
}

func open(t testing.TB, u string) keyhold.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), u)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	unitenv.PostgresURL(t)
	storetest.Run(t, func(t *testing.T) keyhold.Store {
		s := open(t, freshSchema(t))
		t.Cleanup(func() { s.Close() }) // before the schema drop: cleanups run last first
		return s
	})
}

func TestPersist(t *testing.T) {
	u := freshSchema(t)
	storetest.Persist(t, open(t, u), func() keyhold.Store { return open(t, u) })
}

// TestMigrateOnce opens one schema from several "processes" at once: the
// advisory lock lets one migrate and the others find it done.
func TestMigrateOnce(t *testing.T) {
	u := freshSchema(t)
	stores := storetest.OpenAtOnce(t, 4, func() (keyhold.Store, error) { return postgres.Open(context.Background(), u) })
	for _, s := range stores {
		defer s.Close()
	}
	ms, err := sqlstore.LoadMigrations(os.DirFS("migrations"))
	if err != nil {
		t.Fatal(err)
	}
	storetest.MigratedOnce(t, stores[0].(*sqlstore.Store).DB(), len(ms), ms[len(ms)-1].Version)
}

// TestAuditAcrossProcesses appends through separately opened stores (own
// pools, as separate processes have): the row lock on audit_head keeps the
// chain whole.
func TestAuditAcrossProcesses(t *testing.T) {
	u := freshSchema(t)
	a, b := open(t, u), open(t, u)
	defer a.Close()
	defer b.Close()
	storetest.AuditAcrossStores(t, a, b)
}

// TestOpenErrors needs no database: bad input is EInvalid, an unreachable
// server EUnavailable, and no message shows the password.
func TestOpenErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tests := []struct {
		name, url, code string
	}{
		{"empty", "", keyhold.EInvalid},
		{"unparsable", "postgres://u:s3cret@[::1/x", keyhold.EInvalid},
		{"unreachable", "postgres://u:s3cret@127.0.0.1:1/x?sslmode=disable&connect_timeout=2", keyhold.EUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := postgres.Open(ctx, tt.url)
			if got := keyhold.ErrorCode(err); got != tt.code {
				t.Fatalf("got %v (code %q), want code %q", err, got, tt.code)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

// TestLeaseAcrossProcesses leases operations through two separately opened
// stores (own pools, as separate processes have): SKIP LOCKED hands each
// operation to one worker.
func TestLeaseAcrossProcesses(t *testing.T) {
	u := freshSchema(t)
	a, b := open(t, u), open(t, u)
	defer a.Close()
	defer b.Close()
	storetest.LeaseAcrossStores(t, a, b)
}

// TestLargeFile round-trips a 100 MiB file in 1 MiB segments.
func TestLargeFile(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MiB file: skipped with -short")
	}
	s := open(t, freshSchema(t))
	defer s.Close()
	storetest.LargeFile(t, s, 100<<20+12345, 1<<20)
}
