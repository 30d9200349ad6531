package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// testLeases covers taking, renewing, refusing, expiring and releasing a
// lease, and what AcquireLease refuses.
func testLeases(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	acquire := func(name, owner string, now time.Time, d time.Duration) bool {
		t.Helper()
		ok, err := s.AcquireLease(ctx, name, owner, now, now.Add(d))
		must(t, err)
		return ok
	}
	steps := []struct {
		what  string
		owner string
		at    time.Duration
		want  bool
	}{
		{"a free lease is given", "a", 0, true},
		{"another owner is refused while it runs", "b", time.Second, false},
		{"its owner renews it", "a", 20 * time.Second, true},
		{"the renewal moved the end", "b", 40 * time.Second, false},
		{"another owner gets it once it ran out", "b", 51 * time.Second, true},
		{"the first owner is refused now", "a", 52 * time.Second, false},
	}
	for _, st := range steps {
		if got := acquire("keyvault/rotation", st.owner, t0.Add(st.at), 30*time.Second); got != st.want {
			t.Errorf("%s: AcquireLease = %v, want %v", st.what, got, st.want)
		}
	}
	if !acquire("other", "a", t0, time.Minute) {
		t.Error("a lease of another name is independent")
	}

	// Releasing: only by the owner, and at once.
	must(t, s.ReleaseLease(ctx, "keyvault/rotation", "a"))
	if acquire("keyvault/rotation", "c", t0.Add(53*time.Second), time.Minute) {
		t.Error("a release by a non-owner ended the lease")
	}
	must(t, s.ReleaseLease(ctx, "keyvault/rotation", "b"))
	if !acquire("keyvault/rotation", "c", t0.Add(53*time.Second), time.Minute) {
		t.Error("the owner's release did not end the lease")
	}
	must(t, s.ReleaseLease(ctx, "never-taken", "a"))

	bad := []struct {
		what        string
		name, owner string
		now, until  time.Time
	}{
		{"no name", "", "a", t0, t0.Add(time.Second)},
		{"no owner", "x", "", t0, t0.Add(time.Second)},
		{"ends when it starts", "x", "a", t0, t0},
		{"ends before it starts", "x", "a", t0, t0.Add(-time.Second)},
	}
	for _, b := range bad {
		ok, err := s.AcquireLease(ctx, b.name, b.owner, b.now, b.until)
		if keyhold.ErrorCode(err) != keyhold.EInvalid || ok {
			t.Errorf("%s: AcquireLease = %v, %v; want false, EInvalid", b.what, ok, err)
		}
	}
}

// testLeasesConcurrent has many owners ask for one free lease at once:
// exactly one gets it.
func testLeasesConcurrent(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	const owners = 16
	var wg sync.WaitGroup
	won := make([]bool, owners)
	errs := make([]error, owners)
	for i := range owners {
		wg.Go(func() {
			won[i], errs[i] = s.AcquireLease(ctx, "race", fmt.Sprintf("owner-%d", i), t0, t0.Add(time.Minute))
		})
	}
	wg.Wait()
	winners := 0
	for i := range owners {
		if errs[i] != nil && keyhold.ErrorCode(errs[i]) != keyhold.EUnavailable {
			t.Errorf("owner %d: %v", i, errs[i])
		}
		if won[i] {
			winners++
		}
	}
	if winners != 1 {
		t.Errorf("%d owners hold the lease, want 1", winners)
	}
}
