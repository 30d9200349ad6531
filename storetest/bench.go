package storetest

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// RowSize is the sealed size of a row in the benchmarks: 1 KiB, the data
// API's target size.
const RowSize = 1024

// ResealRows is how many rows the re-encryption benchmarks move between
// generations (fewer with -short).
const ResealRows = 100_000

// Bench runs the store's benchmarks of the hot row paths against stores
// made by open: PutRow (create, replace, replace at a version), GetRow
// (serial and parallel), and the re-encryption loop over ResealRows rows
// with ResealRows batches and with one ResealRow per row.
func Bench(b *testing.B, open func(b *testing.B) keyhold.Store) {
	b.Run("PutRow/create", func(b *testing.B) {
		s := benchStore(b, open, 0)
		ctx := context.Background()
		sealed := randomBytes(b, RowSize)
		b.SetBytes(RowSize)
		b.ResetTimer()
		for i := range b.N {
			r := &keyhold.SealedRow{EnvironmentID: "env-a", Table: "account", ID: benchID(i), Generation: 1,
				Sealed: sealed, CreatedAt: t0, UpdatedAt: t0}
			if err := s.PutRow(ctx, r, -1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("PutRow/replace", func(b *testing.B) {
		const n = 1000
		s := benchStore(b, open, n)
		ctx := context.Background()
		sealed := randomBytes(b, RowSize)
		b.SetBytes(RowSize)
		b.ResetTimer()
		for i := range b.N {
			r := &keyhold.SealedRow{EnvironmentID: "env-a", Table: "account", ID: benchID(i % n), Generation: 1,
				Sealed: sealed, UpdatedAt: t0}
			if err := s.PutRow(ctx, r, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("PutRow/ifVersion", func(b *testing.B) {
		const n = 1000
		s := benchStore(b, open, n)
		ctx := context.Background()
		sealed := randomBytes(b, RowSize)
		versions := make([]int64, n)
		for i := range versions {
			versions[i] = 1
		}
		b.SetBytes(RowSize)
		b.ResetTimer()
		for i := range b.N {
			r := &keyhold.SealedRow{EnvironmentID: "env-a", Table: "account", ID: benchID(i % n), Generation: 1,
				Sealed: sealed, UpdatedAt: t0}
			if err := s.PutRow(ctx, r, versions[i%n]); err != nil {
				b.Fatal(err)
			}
			versions[i%n] = r.Version
		}
	})
	b.Run("GetRow", func(b *testing.B) {
		const n = 1000
		s := benchStore(b, open, n)
		ctx := context.Background()
		b.SetBytes(RowSize)
		b.ResetTimer()
		for i := range b.N {
			r, err := s.GetRow(ctx, "env-a", "account", benchID(i%n))
			if err != nil {
				b.Fatal(err)
			}
			if len(r.Sealed) != RowSize {
				b.Fatalf("read %d bytes, want %d", len(r.Sealed), RowSize)
			}
		}
	})
	b.Run("GetRow/parallel", func(b *testing.B) {
		const n = 1000
		s := benchStore(b, open, n)
		ctx := context.Background()
		b.SetBytes(RowSize)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, err := s.GetRow(ctx, "env-a", "account", benchID(i%n)); err != nil {
					b.Error(err)
					return
				}
				i += 7
			}
		})
	})
	rows := ResealRows
	if testing.Short() {
		rows = ResealRows / 10
	}
	// Each iteration moves every row one generation up, as the job does
	// after a link: page, reseal, next page from the cursor.
	b.Run(fmt.Sprintf("Reseal/batch/rows=%d", rows), func(b *testing.B) {
		s := benchStore(b, open, rows)
		benchReseal(b, s, rows, func(ctx context.Context, page []*keyhold.SealedRow) (int, error) {
			return s.ResealRows(ctx, page)
		})
	})
	b.Run(fmt.Sprintf("Reseal/single/rows=%d", rows/10), func(b *testing.B) {
		s := benchStore(b, open, rows/10)
		benchReseal(b, s, rows/10, func(ctx context.Context, page []*keyhold.SealedRow) (int, error) {
			n := 0
			for _, r := range page {
				ok, err := s.ResealRow(ctx, r)
				if err != nil {
					return n, err
				}
				if ok {
					n++
				}
			}
			return n, nil
		})
	})
}

// benchReseal runs the re-encryption loop over all rows once per iteration
// and reports rows per second.
func benchReseal(b *testing.B, s keyhold.Store, rows int, reseal func(context.Context, []*keyhold.SealedRow) (int, error)) {
	ctx := context.Background()
	const page = 1000
	sealed := randomBytes(b, RowSize)
	gen := int64(1)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		gen++
		done := 0
		afterTable, afterID := "", ""
		for {
			list, err := s.ListRowsBelowGeneration(ctx, "env-a", gen, afterTable, afterID, page)
			if err != nil {
				b.Fatal(err)
			}
			if len(list) == 0 {
				break
			}
			for _, r := range list {
				r.Generation, r.Sealed = gen, sealed
			}
			n, err := reseal(ctx, list)
			if err != nil {
				b.Fatal(err)
			}
			done += n
			last := list[len(list)-1]
			afterTable, afterID = last.Table, last.ID
		}
		if done != rows {
			b.Fatalf("resealed %d rows, want %d", done, rows)
		}
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(rows*b.N)/elapsed.Seconds(), "rows/s")
}

// benchStore opens a store with environment env-a, table account and rows
// rows of RowSize bytes under generation 1.
func benchStore(b *testing.B, open func(b *testing.B) keyhold.Store, rows int) keyhold.Store {
	b.Helper()
	s := open(b)
	ctx := context.Background()
	if err := s.CreateEnvironment(ctx, environment("env-a", "t1")); err != nil {
		b.Fatal(err)
	}
	if err := s.CreateTable(ctx, &keyhold.Table{EnvironmentID: "env-a", Name: "account", CreatedAt: t0}); err != nil {
		b.Fatal(err)
	}
	sealed := randomBytes(b, RowSize)
	const batch = 5000
	for start := 0; start < rows; start += batch {
		err := s.InTx(ctx, func(tx keyhold.Store) error {
			for i := start; i < min(start+batch, rows); i++ {
				r := &keyhold.SealedRow{EnvironmentID: "env-a", Table: "account", ID: benchID(i), Generation: 1,
					Sealed: sealed, CreatedAt: t0, UpdatedAt: t0}
				if err := tx.PutRow(ctx, r, -1); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// benchID is a row id shaped like the GUIDs the data API makes.
func benchID(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

func randomBytes(b *testing.B, n int) []byte {
	p := make([]byte, n)
	if _, err := rand.Read(p); err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchRawGetRow reads the same rows as Bench's GetRow with get, a raw
// query the driver writes, so that the store's own overhead on the hot read
// path shows as the difference between the two.
func BenchRawGetRow(b *testing.B, open func(b *testing.B) keyhold.Store, get func(ctx context.Context, s keyhold.Store, id string) ([]byte, error)) {
	const n = 1000
	s := benchStore(b, open, n)
	ctx := context.Background()
	b.SetBytes(RowSize)
	b.ResetTimer()
	for i := range b.N {
		sealed, err := get(ctx, s, benchID(i%n))
		if err != nil {
			b.Fatal(err)
		}
		if len(sealed) != RowSize {
			b.Fatalf("read %d bytes, want %d", len(sealed), RowSize)
		}
	}
}
