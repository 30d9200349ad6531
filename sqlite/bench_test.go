package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore"
	"github.com/keyhold/keyhold/storetest"
)

func benchOpen(b *testing.B) keyhold.Store {
	s := open(b, filepath.Join(b.TempDir(), "keyhold.db"))
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkStore runs the store benchmarks on a database file:
//
//	go test -run '^$' -bench . ./sqlite/
func BenchmarkStore(b *testing.B) { storetest.Bench(b, benchOpen) }

// BenchmarkRawGetRow is the floor under GetRow: the same indexed SELECT
// straight through database/sql.
func BenchmarkRawGetRow(b *testing.B) {
	storetest.BenchRawGetRow(b, benchOpen, func(ctx context.Context, s keyhold.Store, id string) ([]byte, error) {
		var sealed []byte
		err := s.(*sqlstore.Store).DB().QueryRowContext(ctx, `SELECT sealed FROM env_rows
			WHERE environment_id = ? AND table_key = ? AND id = ?`, "env-a", "account", id).Scan(&sealed)
		return sealed, err
	})
}
