package environment

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/internal/unitenv"
)

// savedOp is one operation save a store accepted.
type savedOp struct {
	id, owner, state string // owner: the lease the save was fenced by, "" for an unfenced one
}

// opRecorder is a store that records the operation saves it accepts; saves
// inside a transaction count only once it commits.
type opRecorder struct {
	keyhold.Store
	sink func(savedOp)
}

func newOpRecorder(st keyhold.Store) (*opRecorder, func() []savedOp) {
	var mu sync.Mutex
	var saves []savedOp
	r := &opRecorder{Store: st, sink: func(s savedOp) {
		mu.Lock()
		saves = append(saves, s)
		mu.Unlock()
	}}
	return r, func() []savedOp {
		mu.Lock()
		defer mu.Unlock()
		return append([]savedOp(nil), saves...)
	}
}

func (r *opRecorder) UpdateOperation(ctx context.Context, op *keyhold.Operation) error {
	err := r.Store.UpdateOperation(ctx, op)
	if err == nil {
		r.sink(savedOp{op.ID, "", op.State})
	}
	return err
}

func (r *opRecorder) UpdateOperationLeased(ctx context.Context, op *keyhold.Operation, owner string) error {
	err := r.Store.UpdateOperationLeased(ctx, op, owner)
	if err == nil {
		r.sink(savedOp{op.ID, owner, op.State})
	}
	return err
}

func (r *opRecorder) InTx(ctx context.Context, fn func(tx keyhold.Store) error) error {
	var pending []savedOp
	err := r.Store.InTx(ctx, func(tx keyhold.Store) error {
		pending = pending[:0]
		return fn(&opRecorder{Store: tx, sink: func(s savedOp) { pending = append(pending, s) }})
	})
	if err == nil {
		for _, s := range pending {
			r.sink(s)
		}
	}
	return err
}

// TestLostLeaseStopsTheStalledWorker has two workers (two Services, as two
// servers) on one store and one clock. A leases a link and re-encrypts a
// batch, then stalls past its lease; B leases the operation and runs it.
// A's next save, which carries its next batch, is refused: A stops at once
// without recording anything (no failure, no progress, no row), B finishes,
// the operation succeeds once, and every row reads back equal.
func TestLostLeaseStopsTheStalledWorker(t *testing.T) {
	for _, tc := range []struct {
		name string
		// bFirst has B run the whole operation while A stalls, instead of
		// one batch, then wait for A to be refused.
		bFirst bool
	}{
		{"B still running when A resumes", false},
		{"B done when A resumes", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, e, p := linkable(t)
			ctx := context.Background()
			want := f.seedRows(t, e.ID, 1000, 64)
			rec, saves := newOpRecorder(f.store)
			f.svc.cfg.Store = rec
			f.svc.cfg.Lifecycle.BatchSize = 100
			// Renewals run on a real ticker of a third of this, so none
			// happens during the test: the lease ends when the clock says.
			f.svc.cfg.Lifecycle.LeaseDuration = time.Hour
			var logs unitenv.Buffer
			f.svc.log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
			b := New(f.svc.cfg)
			if b.nodeID() == f.svc.nodeID() || !strings.HasPrefix(b.nodeID(), "node-") {
				t.Fatalf("worker names %q and %q, want two different node-<hex>", f.svc.nodeID(), b.nodeID())
			}
			op, err := f.svc.Link(ctx, f.admin, e.ID, p.SystemID)
			if err != nil {
				t.Fatal(err)
			}

			bBatched := make(chan struct{}) // B has leased the operation and saved a batch
			aStopped := make(chan struct{}) // A's run has returned
			bDone := make(chan error, 1)
			var bOnce sync.Once
			b.lc().afterBatch = func(*keyhold.Operation) {
				if !tc.bFirst {
					bOnce.Do(func() {
						close(bBatched)
						<-aStopped
					})
				}
			}
			aBatches := 0
			f.svc.lc().afterBatch = func(*keyhold.Operation) {
				if aBatches++; aBatches > 1 {
					return
				}
				f.clock.Add(f.svc.lcfg().LeaseDuration + time.Second) // A stalls past its lease
				if tc.bFirst {
					ran, err := b.RunOnce(ctx)
					if err == nil && !ran {
						err = keyhold.Errorf(keyhold.EInternal, "B found nothing to run")
					}
					bDone <- err
					return
				}
				go func() {
					ran, err := b.RunOnce(ctx)
					if err == nil && !ran {
						err = keyhold.Errorf(keyhold.EInternal, "B found nothing to run")
					}
					bDone <- err
				}()
				select {
				case <-bBatched:
				case err := <-bDone:
					bDone <- err // B ended without a batch; reported below
				}
			}
			ran, err := f.svc.RunOnce(ctx)
			close(aStopped)
			if err != nil || !ran {
				t.Fatalf("A's RunOnce = %v, %v; want true, nil", ran, err)
			}
			if err := <-bDone; err != nil {
				t.Fatalf("B's RunOnce: %v", err)
			}
			if aBatches != 1 {
				t.Errorf("A saved %d batches, want 1: it must stop at the first refused save", aBatches)
			}

			got := f.op(t, op.ID)
			if got.State != keyhold.OpSucceeded || got.Error != "" || got.Total != 1000 || got.Done != got.Total {
				t.Errorf("op = %s %q %d/%d, want Succeeded with all 1000 rows done", got.State, got.Error, got.Done, got.Total)
			}
			var succeeded int
			bSaved := false
			for _, s := range saves() {
				if s.id != op.ID {
					continue
				}
				if s.state == keyhold.OpSucceeded {
					succeeded++
				}
				switch {
				case strings.HasPrefix(s.owner, b.nodeID()+"/"):
					bSaved = true
				case strings.HasPrefix(s.owner, f.svc.nodeID()+"/"):
					if bSaved {
						t.Errorf("A saved the operation (%s) after B leased it", s.state)
					}
				default:
					t.Errorf("a save fenced by %q, not a lease of A or B", s.owner)
				}
			}
			if succeeded != 1 || !bSaved {
				t.Errorf("the operation was saved Succeeded %d times (B saved: %v), want once, by B", succeeded, bSaved)
			}
			if env := f.env(t, e.ID); env.EncryptionStatus != keyhold.EncryptionEncrypted {
				t.Errorf("encryption status = %s, want Encrypted", env.EncryptionStatus)
			}
			if _, below, err := f.store.CountRows(ctx, e.ID, 2); err != nil || below != 0 {
				t.Errorf("%d rows below generation 2 (%v), want 0", below, err)
			}
			f.checkRows(t, e.ID, want)
			l := logs.String()
			if !strings.Contains(l, "level=WARN") || !strings.Contains(l, "lost the lease") ||
				!strings.Contains(l, "worker="+f.svc.nodeID()) || strings.Contains(l, "lifecycle operation failed") {
				t.Errorf("A's log = %q, want a warning that it lost the lease naming its worker, and no failure", l)
			}
		})
	}
}
