package testenv

import (
	"database/sql"
	"testing"

	"github.com/keyhold/keyhold/internal/unitenv"
)

// PostgresURLVar names the variable that points tests at PostgreSQL.
const PostgresURLVar = unitenv.PostgresURLVar

// PostgresSchema creates a schema with a random name in the test database,
// drops it when the test ends, and returns a URL whose every connection uses
// it, so that tests running at once never see each other's tables. Without
// KEYHOLD_TEST_DATABASE_URL the test is skipped, except under CI=true, where
// it fails: the PostgreSQL suites are required there. It is
// unitenv.PostgresSchema, kept here for the tests that start a server.
func PostgresSchema(tb testing.TB) (dsn, schema string, db *sql.DB) {
	tb.Helper()
	return unitenv.PostgresSchema(tb)
}
