package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// wantLeaseLost checks that err is UpdateOperationLeased's refusal of a
// worker whose lease moved: EConflict with its detail, naming the operation.
func wantLeaseLost(t *testing.T, what string, err error, opID string) {
	t.Helper()
	wantCode(t, what, err, keyhold.EConflict)
	if d := keyhold.ErrorDetail(err); d != keyhold.DetailOperationLeaseLost {
		t.Errorf("%s: detail %q, want %q", what, d, keyhold.DetailOperationLeaseLost)
	}
	if msg := keyhold.ErrorMessage(err); !strings.Contains(msg, opID) || !strings.Contains(msg, "no longer leased") {
		t.Errorf("%s: message %q does not say that operation %s is no longer leased", what, msg, opID)
	}
}

// testUpdateOperationLeased walks one operation through the leases of two
// workers: each save is accepted while its worker holds the lease, even past
// LeaseUntil when nobody took it, and refused once another worker leased it
// or the lease was released; the refused save changes nothing.
func testUpdateOperationLeased(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	mustEnv(t, s, "env-a")
	must(t, s.CreateOperation(ctx, operation("op-1", "env-a", t0)))
	now := t0.Add(time.Hour)
	leased, err := s.LeaseOperation(ctx, "w1", now, now.Add(time.Minute))
	must(t, err)

	// save returns the operation as stored after changing it.
	save := func(op keyhold.Operation, done int64, owner string, until time.Time) keyhold.Operation {
		op.State, op.Done, op.Cursor, op.UpdatedAt = keyhold.OpRunning, done, fmt.Sprintf("rows:%d", done), until.Add(-time.Minute)
		op.LeaseOwner, op.LeaseUntil = owner, until
		return op
	}
	w1 := save(*leased, 10, "w1", now.Add(2*time.Minute))
	steps := []struct {
		name  string
		op    keyhold.Operation
		owner string
		code  string // "" for success; keyhold.DetailOperationLeaseLost for a lost lease
	}{
		{"holder renews", w1, "w1", ""},
		{"another worker", save(w1, 99, "w2", now.Add(time.Hour)), "w2", keyhold.DetailOperationLeaseLost},
		{"no owner", save(w1, 99, "", now), "", keyhold.EInvalid},
		{"no state", func() keyhold.Operation { op := w1; op.State = ""; return op }(), "w1", keyhold.EInvalid},
		{"missing", func() keyhold.Operation { op := w1; op.ID = "op-9"; return op }(), "w1", keyhold.ENotFound},
		// The store keeps no clock: whatever LeaseUntil says, the lease is
		// w1's until another worker takes it.
		{"holder after expiry", save(w1, 20, "w1", now.Add(3*time.Hour)), "w1", ""},
	}
	want := *leased
	for _, st := range steps {
		err := s.UpdateOperationLeased(ctx, &st.op, st.owner)
		switch st.code {
		case "":
			must(t, err)
			want = st.op
		case keyhold.DetailOperationLeaseLost:
			wantLeaseLost(t, st.name, err, st.op.ID)
		default:
			wantCode(t, st.name, err, st.code)
		}
		got, err := s.GetOperation(ctx, "op-1")
		must(t, err)
		same(t, "after "+st.name, got, &want)
	}

	// w2 leases it once w1's lease has run out: w1's next save is refused
	// and w2's accepted.
	later := now.Add(4 * time.Hour)
	taken, err := s.LeaseOperation(ctx, "w2", later, later.Add(time.Minute))
	must(t, err)
	stale := save(want, 30, "w1", later.Add(time.Minute))
	wantLeaseLost(t, "w1 after w2 leased it", s.UpdateOperationLeased(ctx, &stale, "w1"), "op-1")
	if got, err := s.GetOperation(ctx, "op-1"); err != nil || got.Done != want.Done || got.LeaseOwner != "w2" {
		t.Errorf("after the refused save: %v, done %d owner %q; want done %d owner w2", err, got.Done, got.LeaseOwner, want.Done)
	}
	finished := save(*taken, 40, "", time.Time{})
	finished.State, finished.UpdatedAt = keyhold.OpSucceeded, later
	must(t, s.UpdateOperationLeased(ctx, &finished, "w2"))
	// Released: nobody's saves are accepted any more, not even w2's.
	again := finished
	again.State = keyhold.OpRunning
	wantLeaseLost(t, "w2 after releasing", s.UpdateOperationLeased(ctx, &again, "w2"), "op-1")
	got, err := s.GetOperation(ctx, "op-1")
	must(t, err)
	same(t, "finished", got, &finished)
	// The plain UpdateOperation of other writers does not look at leases.
	must(t, s.UpdateOperation(ctx, &again))
}

// testUpdateOperationLeasedInTx: a refused save inside a transaction fails
// it, so the transaction's other writes (a worker's batch of rows) roll
// back with it; the holder's commit together.
func testUpdateOperationLeasedInTx(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	mustEnv(t, s, "env-a")
	must(t, s.CreateOperation(ctx, operation("op-1", "env-a", t0)))
	now := t0.Add(time.Hour)
	op, err := s.LeaseOperation(ctx, "w1", now, now.Add(time.Minute))
	must(t, err)
	for _, tc := range []struct {
		owner, table string
		lost         bool
	}{
		{"w2", "lost", true},
		{"w1", "kept", false},
	} {
		next := *op
		next.Done, next.State = 5, keyhold.OpRunning
		err := s.InTx(ctx, func(tx keyhold.Store) error {
			if err := tx.CreateTable(ctx, &keyhold.Table{EnvironmentID: "env-a", Name: tc.table, CreatedAt: t0}); err != nil {
				return err
			}
			return tx.UpdateOperationLeased(ctx, &next, tc.owner)
		})
		_, terr := s.GetTable(ctx, "env-a", tc.table)
		if tc.lost {
			wantLeaseLost(t, "InTx as "+tc.owner, err, "op-1")
			wantCode(t, "table written before the refused save", terr, keyhold.ENotFound)
			continue
		}
		must(t, err)
		must(t, terr)
	}
	got, err := s.GetOperation(ctx, "op-1")
	must(t, err)
	if got.Done != 5 || got.LeaseOwner != "w1" {
		t.Errorf("after the transactions: done %d owner %q, want 5 and w1", got.Done, got.LeaseOwner)
	}
}

// testUpdateOperationLeasedConcurrent has 4 workers keep taking one
// operation from each other, each lease ending before the next starts, and
// adding one to its Done with the lease they were given. Every save accepted
// was made by the lease's holder between its lease and the next, so none is
// lost: Done ends equal to the number of accepted saves. Without the fence a
// worker overtaken between its read and its save would write a stale count.
func testUpdateOperationLeasedConcurrent(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	mustEnv(t, s, "env-a")
	must(t, s.CreateOperation(ctx, operation("op-1", "env-a", t0)))
	const workers, rounds = 4, 25
	var (
		tick     atomic.Int64 // each lease starts a minute after the last
		accepted atomic.Int64
		refused  atomic.Int64
		wg       sync.WaitGroup
		errs     = make(chan error, workers)
	)
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				owner := fmt.Sprintf("w%d-%d", w, i) // one name per lease
				now := t0.Add(time.Duration(tick.Add(1)) * time.Minute)
				if _, err := s.LeaseOperation(ctx, owner, now, now.Add(time.Second)); keyhold.IsNotFound(err) {
					continue // a later lease got there first
				} else if err != nil {
					errs <- err
					return
				}
				op, err := s.GetOperation(ctx, "op-1")
				if err != nil {
					errs <- err
					return
				}
				op.Done++
				op.State = keyhold.OpRunning
				err = s.UpdateOperationLeased(ctx, op, owner)
				switch {
				case err == nil:
					accepted.Add(1)
				case keyhold.ErrorDetail(err) == keyhold.DetailOperationLeaseLost:
					refused.Add(1)
				default:
					errs <- fmt.Errorf("%s: %w", owner, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	if err := errors.Join(all...); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetOperation(ctx, "op-1")
	must(t, err)
	if accepted.Load() == 0 || got.Done != accepted.Load() {
		t.Errorf("Done = %d after %d accepted and %d refused saves; want Done = accepted > 0", got.Done, accepted.Load(), refused.Load())
	}
	t.Logf("%d saves accepted, %d refused", accepted.Load(), refused.Load())
}
