package environment

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/envelope"
)

// TestLinkWithConcurrentWriter links an environment of 10,000 rows while a
// writer keeps rewriting rows: no write fails, no update is lost, every row
// reads back equal under the new generation, and the old one is destroyed.
func TestLinkWithConcurrentWriter(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 rows")
	}
	f, e, p := linkable(t)
	ctx := context.Background()
	want := f.seedRows(t, e.ID, 10000, 128)
	f.svc.cfg.Lifecycle.BatchSize = 250

	var mu sync.Mutex
	stop := make(chan struct{})
	var writes atomic.Int64
	var werr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(1, 2))
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id := fmt.Sprintf("row-%06d", rng.IntN(10000))
			content := []byte(fmt.Sprintf("%s rewritten %d", id, i))
			if err := f.writeRow(t, e.ID, id, content, 0); err != nil {
				mu.Lock()
				werr = fmt.Errorf("write %s: %w", id, err)
				mu.Unlock()
				return
			}
			mu.Lock()
			want[id] = content
			mu.Unlock()
			writes.Add(1)
		}
	}()

	op, err := f.svc.Link(ctx, f.admin, e.ID, p.SystemID)
	if err != nil {
		t.Fatal(err)
	}
	f.runAll(t)
	// Keep writing a little after the link, then stop.
	for writes.Load() < 200 {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if werr != nil {
		t.Fatalf("a concurrent write failed: %v", werr)
	}
	got := f.op(t, op.ID)
	if got.State != keyhold.OpSucceeded || got.Done != got.Total || got.Total < 10000 {
		t.Fatalf("op = %s %d/%d %q, want Succeeded with every record done", got.State, got.Done, got.Total, got.Error)
	}
	gens, _ := f.store.ListGenerations(ctx, e.ID)
	if len(gens) != 2 || gens[0].State != keyhold.GenerationDestroyed || len(gens[0].Wrapped) != 0 ||
		gens[1].State != keyhold.GenerationActive || gens[1].WrappedBy.Kind != keyhold.WrapCustomer {
		t.Fatalf("generations = %+v, want 1 destroyed (no wrapped key), 2 active under the customer key", gens)
	}
	total, below, _ := f.store.CountRows(ctx, e.ID, 2)
	if total != 10000 || below != 0 {
		t.Fatalf("rows = %d, %d below generation 2; want 10000, 0", total, below)
	}
	f.checkRows(t, e.ID, want)
	t.Logf("%d concurrent writes during the link", writes.Load())
}

// TestRewrapDoesNotTouchRows: swap and unlink re-wrap the generations and
// leave every row's sealed bytes and version as they were.
func TestRewrapDoesNotTouchRows(t *testing.T) {
	f, e, p := linkable(t)
	ctx := context.Background()
	want := f.seedRows(t, e.ID, 500, 64)
	if _, err := f.svc.Link(ctx, f.admin, e.ID, p.SystemID); err != nil {
		t.Fatal(err)
	}
	f.runAll(t)
	snapshot := func() map[string]string {
		rows, err := f.store.ListRows(ctx, e.ID, "accounts", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, r := range rows {
			m[r.ID] = fmt.Sprintf("%d/%d/%x", r.Version, r.Generation, r.Sealed)
		}
		return m
	}
	before := snapshot()
	p2 := f.addPolicy(t, "ep2", "europe", "Encryption", "Healthy", true)
	f.grantPolicyReader(t, f.admin, p2.ID)

	steps := []struct {
		name     string
		do       func() (*keyhold.Operation, error)
		wantKind string
		wantBy   string
	}{
		{"swap", func() (*keyhold.Operation, error) { return f.svc.Link(ctx, f.admin, e.ID, p2.SystemID) }, keyhold.WrapCustomer, keyhold.KeyManagedByCustomer},
		{"unlink", func() (*keyhold.Operation, error) { return f.svc.Unlink(ctx, f.admin, e.ID, "") }, keyhold.WrapPlatform, keyhold.KeyManagedByMicrosoft},
	}
	for _, st := range steps {
		op, err := st.do()
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		f.runAll(t)
		if got := f.op(t, op.ID); got.State != keyhold.OpSucceeded {
			t.Fatalf("%s: %s %q", st.name, got.State, got.Error)
		}
		after := snapshot()
		for id, v := range before {
			if after[id] != v {
				t.Fatalf("%s changed row %s", st.name, id)
			}
		}
		gens, _ := f.store.ListGenerations(ctx, e.ID)
		live := gens[len(gens)-1]
		if live.WrappedBy.Kind != st.wantKind {
			t.Fatalf("%s: live generation wrapped by %s, want %s", st.name, live.WrappedBy.Kind, st.wantKind)
		}
		if env := f.env(t, e.ID); env.KeyManagedBy != st.wantBy {
			t.Fatalf("%s: keyManagedBy = %s, want %s", st.name, env.KeyManagedBy, st.wantBy)
		}
		// Every row still opens from the store alone, with a cold keyring.
		f.checkRows(t, e.ID, want)
	}
	env := f.env(t, e.ID)
	if env.PolicyID != "" || env.LinkStatus != "" || env.EncryptionStatus != keyhold.EncryptionPlatform {
		t.Fatalf("after unlink = %+v", env)
	}
	// The old policy's key is no longer needed.
	f.mem.Delete(p.Key.VaultID, p.Key.KeyName)
	f.mem.Delete(p2.Key.VaultID, p2.Key.KeyName)
	f.checkRows(t, e.ID, want)
}

// TestResumeAfterCrash stops the worker in the middle of the re-encryption
// and has a new Service on the same store resume from the saved cursor.
func TestResumeAfterCrash(t *testing.T) {
	f, e, p := linkable(t)
	want := f.seedRows(t, e.ID, 2000, 64)
	f.svc.cfg.Lifecycle.BatchSize = 100
	op, err := f.svc.Link(context.Background(), f.admin, e.ID, p.SystemID)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	batches := 0
	f.svc.lc().afterBatch = func(*keyhold.Operation) {
		if batches++; batches == 5 {
			cancel()
		}
	}
	if _, err := f.svc.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	crashed := f.op(t, op.ID)
	if crashed.State != keyhold.OpRunning || crashed.Cursor == "" || crashed.Done < 500 || crashed.Done >= 2000 {
		t.Fatalf("after the crash: %s cursor %q done %d, want Running with a cursor, 500 to 1999 done", crashed.State, crashed.Cursor, crashed.Done)
	}
	// A new process: new keyring, nothing cached; the old lease runs out.
	svc2 := New(f.svc.cfg)
	svc2.cfg.Lifecycle.BatchSize = 100
	var firstCursor string
	svc2.lc().afterBatch = func(op *keyhold.Operation) {
		if firstCursor == "" {
			firstCursor = op.Cursor
		}
	}
	// The stopped worker released its lease, so the new one resumes at
	// once (a lease left by a killed one: TestReclaimLeasesOnStart).
	if crashed.LeaseUntil.After(f.clock.Now()) {
		t.Fatalf("the stopped worker kept its lease until %v", crashed.LeaseUntil)
	}
	for {
		ran, err := svc2.RunOnce(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !ran {
			break
		}
	}
	got := f.op(t, op.ID)
	if got.State != keyhold.OpSucceeded {
		t.Fatalf("resumed op = %s %q", got.State, got.Error)
	}
	if firstCursor <= crashed.Cursor {
		t.Fatalf("the resumed job's first batch ended at %q, not after the saved cursor %q", firstCursor, crashed.Cursor)
	}
	f.checkRows(t, e.ID, want)
}

// TestResealBatch reseals a batch large enough to be spread over workers:
// every row comes back in its place under the new generation with the same
// content, and a row holding another row's ciphertext fails the batch with
// an integrity error that names it.
func TestResealBatch(t *testing.T) {
	f := newFixture(t)
	e := f.create(t, keyhold.EnvProduction)
	ctx := context.Background()
	want := f.seedRows(t, e.ID, 200, 100)
	rows, err := f.store.ListRowsBelowGeneration(ctx, e.ID, 99, "", "", 1000)
	if err != nil || len(rows) != 200 {
		t.Fatalf("listed %d rows, err %v", len(rows), err)
	}
	gen := rows[0].Generation // resealed anew under the same generation: fresh salt and nonce
	for _, tc := range []struct {
		name    string
		moved   int // index of a row given another row's ciphertext; -1 none
		wantErr string
	}{
		{"all good", -1, ""},
		{"moved ciphertext", 137, "row accounts/row-000137"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := make([]*keyhold.SealedRow, len(rows))
			for i, r := range rows {
				c := *r
				in[i] = &c
			}
			if tc.moved >= 0 {
				in[tc.moved].Sealed = rows[tc.moved-1].Sealed
			}
			out, err := f.svc.resealBatch(ctx, e.ID, gen, in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(keyhold.ErrorMessage(err), tc.wantErr) || keyhold.ErrorCode(err) != keyhold.EConflict {
					t.Fatalf("err = %v (%s), want EConflict naming %q", err, keyhold.ErrorMessage(err), tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range out {
				if r.ID != rows[i].ID || r.Generation != gen || bytes.Equal(r.Sealed, rows[i].Sealed) {
					t.Fatalf("out[%d] = %s gen %d (sealed anew: %v), want %s gen %d resealed", i, r.ID, r.Generation, !bytes.Equal(r.Sealed, rows[i].Sealed), rows[i].ID, gen)
				}
				got, err := f.svc.Keyring().Open(ctx, envelope.RowBinding(e.ID, r.Table, r.ID), r.Sealed)
				if err != nil || !bytes.Equal(got, want[r.ID]) {
					t.Fatalf("row %s opens to %q, %v; want %q", r.ID, got, err, want[r.ID])
				}
			}
		})
	}
}
