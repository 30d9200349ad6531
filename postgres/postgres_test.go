package postgres_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/postgres"
	"github.com/keyhold/keyhold/sqlstore"
	"github.com/keyhold/keyhold/storetest"
)

const envURL = "KEYHOLD_TEST_DATABASE_URL"

// baseURL returns the test database URL, skipping without one, except in CI
// where PostgreSQL tests are required.
func baseURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(envURL)
	if u == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set, and CI requires the PostgreSQL tests", envURL)
		}
		t.Skipf("%s is not set; skipping PostgreSQL tests", envURL)
	}
	return u
}

// freshSchema creates a schema with a random name, drops it at cleanup, and
// returns a URL whose every connection uses it, so that parallel test runs
// on one database never see each other's tables.
func freshSchema(t testing.TB) string {
	t.Helper()
	base := baseURL(t)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	b := make([]byte, 8)
	rand.Read(b)
	schema := "keyhold_test_" + hex.EncodeToString(b)
	ctx := context.Background()
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("creating schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	return withSearchPath(t, base, schema)
}

func withSearchPath(t testing.TB, base, schema string) string {
	if !strings.HasPrefix(base, "postgres://") && !strings.HasPrefix(base, "postgresql://") {
		return base + " search_path=" + schema // key=value DSN
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", envURL, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
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
	baseURL(t)
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
	ctx := context.Background()
	const n = 4
	stores := make([]keyhold.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = postgres.Open(ctx, u)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Open #%d: %v", i, err)
		}
		defer stores[i].Close()
	}
	db := stores[0].(*sqlstore.Store).DB()
	ms, err := sqlstore.LoadMigrations(os.DirFS("migrations"))
	if err != nil {
		t.Fatal(err)
	}
	var rows int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != len(ms) {
		t.Errorf("schema_migrations has %d rows, want %d", rows, len(ms))
	}
	var heads int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM audit_head`).Scan(&heads); err != nil || heads != 1 {
		t.Errorf("audit_head rows: %d (%v), want 1", heads, err)
	}
}

// TestAuditAcrossProcesses appends through separately opened stores (own
// pools, as separate processes have): the row lock on audit_head keeps the
// chain whole.
func TestAuditAcrossProcesses(t *testing.T) {
	u := freshSchema(t)
	ctx := context.Background()
	a, b := open(t, u), open(t, u)
	defer a.Close()
	defer b.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i, s := range []keyhold.Store{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 15 {
				if err := s.AppendAudit(ctx, &keyhold.AuditRecord{Time: time.Now(), RequestID: fmt.Sprintf("%d-%d", i, j)}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("AppendAudit: %v", err)
	}
	recs, err := b.ListAudit(ctx, keyhold.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 60 {
		t.Errorf("got %d records, want 60", len(recs))
	}
	if _, err := keyhold.VerifyAuditChain(nil, recs); err != nil {
		t.Error(err)
	}
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
