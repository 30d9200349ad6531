package postgres_test

import (
	"context"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore"
	"github.com/keyhold/keyhold/storetest"
)

func benchOpen(b *testing.B) keyhold.Store {
	s := open(b, freshSchema(b))
	b.Cleanup(func() { s.Close() }) // before the schema drop: cleanups run last first
	return s
}

// BenchmarkStore runs the store benchmarks in a fresh schema:
//
//	KEYHOLD_TEST_DATABASE_URL=... go test -run '^$' -bench . ./postgres/
func BenchmarkStore(b *testing.B) { storetest.Bench(b, benchOpen) }

// BenchmarkRawGetRow is the floor under GetRow: the same indexed SELECT
// straight through database/sql and pgx.
func BenchmarkRawGetRow(b *testing.B) {
	storetest.BenchRawGetRow(b, benchOpen, func(ctx context.Context, s keyhold.Store, id string) ([]byte, error) {
		var sealed []byte
		err := s.(*sqlstore.Store).DB().QueryRowContext(ctx, `SELECT sealed FROM env_rows
			WHERE environment_id = $1 AND table_key = $2 AND id = $3`, "env-a", "account", id).Scan(&sealed)
		return sealed, err
	})
}
