package environment

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/policy"
)

// BenchmarkReencrypt links an environment of 1 KiB rows and times the
// re-encryption job against a plain rewrite of the same rows (the same
// pages and ResealRows batches without opening or sealing), on SQLite.
// Metrics: rows/s, MB/s and ratio (re-encryption rows/s over plain rows/s;
// target >= 0.7).
func BenchmarkReencrypt(b *testing.B) {
	const rows = 5000
	t := &testing.T{}
	var reenc, plain time.Duration
	for range b.N {
		b.StopTimer()
		f := newFixture(t)
		e := f.create(t, keyhold.EnvProduction)
		p := f.addPolicy(t, "ep1", "europe", policy.KindEncryption, policy.HealthHealthy, false)
		f.grantPolicyReader(t, f.admin, p.ID)
		f.seedRows(b, e.ID, rows, 1024)
		ctx := context.Background()

		// Plain rewrite: the same store work, no cryptography.
		start := time.Now()
		var at, aid string
		for {
			list, err := f.store.ListRowsBelowGeneration(ctx, e.ID, 2, at, aid, DefaultBatchSize)
			if err != nil {
				b.Fatal(err)
			}
			if len(list) == 0 {
				break
			}
			if _, err := f.store.ResealRows(ctx, list); err != nil {
				b.Fatal(err)
			}
			at, aid = list[len(list)-1].Table, list[len(list)-1].ID
		}
		plain += time.Since(start)

		if _, err := f.svc.Link(ctx, f.admin, e.ID, p.SystemID); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start = time.Now()
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
		f.store.Close()
	}
	n := float64(rows * b.N)
	b.ReportMetric(n/reenc.Seconds(), "rows/s")
	b.ReportMetric(n*1024/reenc.Seconds()/1e6, "MB/s")
	b.ReportMetric(n/plain.Seconds(), "plain-rows/s")
	b.ReportMetric(plain.Seconds()/reenc.Seconds(), "ratio")
}

// BenchmarkSwap times a swap (link to another policy while linked) of an
// environment with 1,000 and 20,000 rows: a re-wrap of its generations, so
// the time must not grow with the rows.
func BenchmarkSwap(b *testing.B) {
	for _, rows := range []int{1000, 20000} {
		b.Run(fmt.Sprintf("rows=%d", rows), func(b *testing.B) {
			t := &testing.T{}
			f := newFixture(t)
			defer f.store.Close()
			e := f.create(t, keyhold.EnvProduction)
			ps := []testPolicy{
				f.addPolicy(t, "ep1", "europe", policy.KindEncryption, policy.HealthHealthy, false),
				f.addPolicy(t, "ep2", "europe", policy.KindEncryption, policy.HealthHealthy, false),
			}
			for _, p := range ps {
				f.grantPolicyReader(t, f.admin, p.ID)
			}
			f.seedRows(b, e.ID, rows, 64)
			ctx := context.Background()
			if _, err := f.svc.Link(ctx, f.admin, e.ID, ps[0].SystemID); err != nil {
				b.Fatal(err)
			}
			f.runAll(t)
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
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/swap")
		})
	}
}
