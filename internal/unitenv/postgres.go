package unitenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the pgx driver for database/sql
)

// PostgresURLVar names the variable that points tests at PostgreSQL.
const PostgresURLVar = "KEYHOLD_TEST_DATABASE_URL"

// PostgresURL returns the test database's URL from KEYHOLD_TEST_DATABASE_URL.
// Without it the test is skipped, except under CI=true, where it fails: the
// PostgreSQL suites are required there.
func PostgresURL(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv(PostgresURLVar)
	if base == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("%s is not set, and CI requires the PostgreSQL tests", PostgresURLVar)
		}
		tb.Skipf("%s is not set; skipping the PostgreSQL run", PostgresURLVar)
	}
	return base
}

// PostgresSchema creates a schema with a random name in the test database,
// drops it when the test ends, and returns a URL whose every connection uses
// it, so that tests running at once never see each other's tables. Without
// KEYHOLD_TEST_DATABASE_URL the test is skipped, except under CI=true, where
// it fails: the PostgreSQL suites are required there.
func PostgresSchema(tb testing.TB) (dsn, schema string, db *sql.DB) {
	tb.Helper()
	base := PostgresURL(tb)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { admin.Close() })
	b := make([]byte, 8)
	rand.Read(b)
	schema = "keyhold_test_" + hex.EncodeToString(b)
	if _, err := admin.ExecContext(context.Background(), "CREATE SCHEMA "+schema); err != nil {
		tb.Fatalf("creating schema: %v", err)
	}
	tb.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			tb.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	if !strings.HasPrefix(base, "postgres://") && !strings.HasPrefix(base, "postgresql://") {
		return base + " search_path=" + schema, schema, admin
	}
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("%s: %v", PostgresURLVar, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), schema, admin
}
