package environment

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/envelope"
	"github.com/keyhold/keyhold/internal/unitenv"
	"github.com/keyhold/keyhold/policy"
	"github.com/keyhold/keyhold/postgres"
)

// benchStores are the stores the benchmarks run on: SQLite always,
// PostgreSQL when KEYHOLD_TEST_DATABASE_URL names a server (each run in a
// fresh schema, dropped afterwards).
func benchStores(b *testing.B) map[string]func(b *testing.B) keyhold.Store {
	stores := map[string]func(b *testing.B) keyhold.Store{
		"sqlite": func(b *testing.B) keyhold.Store { return unitenv.SQLite(b, "keyhold.db") },
	}
	if os.Getenv(unitenv.PostgresURLVar) != "" {
		stores["postgres"] = func(b *testing.B) keyhold.Store {
			u, _, _ := unitenv.PostgresSchema(b)
			st, err := postgres.Open(context.Background(), u)
			if err != nil {
				b.Fatal(err)
			}
			pgSettle[st] = u
			return st
		}
	}
	return stores
}

// pgSettle maps a PostgreSQL store of benchStores to its URL, for settle.
var pgSettle = map[keyhold.Store]string{}

// settle lets the database catch up with a bulk load before a timed loop:
// on PostgreSQL, VACUUM ANALYZE, so that autovacuum and stale statistics
// do not land in the measurement. SQLite needs nothing.
func settle(b *testing.B, st keyhold.Store) {
	u, ok := pgSettle[st]
	if !ok {
		return
	}
	db, err := sql.Open("pgx", u)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("VACUUM ANALYZE env_rows"); err != nil {
		b.Fatal(err)
	}
}

// bulkRows writes n rows of size bytes to the environment's table
// "accounts", sealed under its active generation with the key fetched
// once, in transactions of 5,000 rows: seeding a million rows a request at
// a time would take longer than the benchmark.
func (f *fixture) bulkRows(b *testing.B, envID string, n, size int) {
	ctx := context.Background()
	if err := f.store.CreateTable(ctx, &keyhold.Table{EnvironmentID: envID, Name: "accounts", CreatedAt: f.clock.Now()}); err != nil && !keyhold.IsConflict(err) {
		b.Fatal(err)
	}
	env, err := f.svc.Open(ctx, f.admin, envID, true)
	if err != nil {
		b.Fatal(err)
	}
	root, err := f.svc.Keyring().Get(ctx, envID, env.Active)
	if err != nil {
		b.Fatal(err)
	}
	defer root.Wipe()
	const perTx = 5000
	for lo := 0; lo < n; lo += perTx {
		err := f.store.InTx(ctx, func(tx keyhold.Store) error {
			for i := lo; i < min(lo+perTx, n); i++ {
				id := fmt.Sprintf("row-%07d", i)
				content := []byte(strings.Repeat(id, size/len(id)+1)[:size])
				sealed := envelope.Seal(root, env.Active, envelope.RowBinding(envID, "accounts", id), content)
				r := &keyhold.SealedRow{EnvironmentID: envID, Table: "accounts", ID: id, Generation: env.Active, Sealed: sealed,
					CreatedAt: f.clock.Now(), UpdatedAt: f.clock.Now()}
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
}

// BenchmarkReencrypt links an environment of 1 KiB rows and times the
// re-encryption job against a plain rewrite of the same rows: the same
// pages and ResealRows batches writing the same columns (the generation
// too, so that its index is maintained alike) without opening or sealing.
// Metrics: rows/s, MB/s and ratio (re-encryption rows/s over plain rows/s;
// target >= 0.7).
func BenchmarkReencrypt(b *testing.B) {
	for name, open := range benchStores(b) {
		b.Run("store="+name, func(b *testing.B) {
			const rows = 20000
			t := &testing.T{}
			var reenc, plain time.Duration
			for range b.N {
				b.StopTimer()
				st := open(b)
				f := fixtureOn(t, st)
				e := f.create(t, keyhold.EnvProduction)
				p := f.addPolicy(t, "ep1", "europe", policy.KindEncryption, policy.HealthHealthy, false)
				f.grantPolicyReader(t, f.admin, p.ID)
				f.bulkRows(b, e.ID, rows, 1024)
				ctx := context.Background()

				if _, err := f.svc.Link(ctx, f.admin, e.ID, p.SystemID); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				start := time.Now()
				for {
					ran, err := f.svc.RunOnce(ctx)
					if err != nil {
						b.Fatal(err)
					}
					if !ran {
						break
					}
				}
				reenc += time.Since(start)
				b.StopTimer()
				if e2 := f.env(t, e.ID); e2.EncryptionStatus != keyhold.EncryptionEncrypted {
					b.Fatalf("encryption status %s", e2.EncryptionStatus)
				}

				// Plain rewrite: every row moves to a generation one above
				// (the store does not check headers), no cryptography.
				gen := int64(2)
				start = time.Now()
				var at, aid string
				for {
					list, err := f.store.ListRowsBelowGeneration(ctx, e.ID, gen+1, at, aid, f.svc.lcfg().BatchSize)
					if err != nil {
						b.Fatal(err)
					}
					if len(list) == 0 {
						break
					}
					for _, r := range list {
						r.Generation = gen + 1
					}
					if _, err := f.store.ResealRows(ctx, list); err != nil {
						b.Fatal(err)
					}
					at, aid = list[len(list)-1].Table, list[len(list)-1].ID
				}
				plain += time.Since(start)
				if total, below, err := f.store.CountRows(ctx, e.ID, gen+1); err != nil || total != rows || below != 0 {
					b.Fatalf("plain rewrite left %d of %d rows below, err %v", below, total, err)
				}
				st.Close()
			}
			n := float64(rows * b.N)
			b.ReportMetric(n/reenc.Seconds(), "rows/s")
			b.ReportMetric(n*1024/reenc.Seconds()/1e6, "MB/s")
			b.ReportMetric(n/plain.Seconds(), "plain-rows/s")
			b.ReportMetric(plain.Seconds()/reenc.Seconds(), "ratio")
		})
	}
}

// BenchmarkSwap times a swap (link to another policy while linked) of an
// environment with 1,000 and 1,000,000 rows: a re-wrap of its generations,
// so the time must not grow with the rows (target: equal, under 100 ms).
// The million rows are written straight through the store (bulkRows).
func BenchmarkSwap(b *testing.B) {
	for name, open := range benchStores(b) {
		for _, rows := range []int{1000, 1000000} {
			b.Run(fmt.Sprintf("store=%s/rows=%d", name, rows), func(b *testing.B) {
				t := &testing.T{}
				st := open(b)
				defer st.Close()
				f := fixtureOn(t, st)
				e := f.create(t, keyhold.EnvProduction)
				ps := []testPolicy{
					f.addPolicy(t, "ep1", "europe", policy.KindEncryption, policy.HealthHealthy, false),
					f.addPolicy(t, "ep2", "europe", policy.KindEncryption, policy.HealthHealthy, false),
				}
				for _, p := range ps {
					f.grantPolicyReader(t, f.admin, p.ID)
				}
				ctx := context.Background()
				// Linked before the rows are written, so that they are born
				// under the customer's generation and no re-encryption runs.
				if _, err := f.svc.Link(ctx, f.admin, e.ID, ps[0].SystemID); err != nil {
					b.Fatal(err)
				}
				f.runAll(t)
				f.bulkRows(b, e.ID, rows, 64)
				settle(b, st)
				b.ResetTimer()
				for i := range b.N {
					op, err := f.svc.Link(ctx, f.admin, e.ID, ps[(i+1)%2].SystemID)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := f.svc.RunOnce(ctx); err != nil {
						b.Fatal(err)
					}
					if got := f.op(t, op.ID); got.State != keyhold.OpSucceeded || got.Action != ActionSwap {
						b.Fatalf("swap %s %s %q", got.Action, got.State, got.Error)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/swap")
			})
		}
	}
}
