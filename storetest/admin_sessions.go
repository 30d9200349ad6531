package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

func adminSession(hash string, expires time.Time) *keyhold.AdminSession {
	return &keyhold.AdminSession{IDHash: hash, Sealed: []byte{0x01, 0x00, 0xff, '\'', byte(len(hash))},
		ExpiresAt: expires, CreatedAt: t0}
}

// testAdminSessions covers create, get, update and delete, and what each
// refuses.
func testAdminSessions(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	a := adminSession("aa01", t0.Add(8*time.Hour))
	must(t, s.CreateAdminSession(ctx, a))
	same(t, "Version after create", a.Version, int64(1))
	got, err := s.GetAdminSession(ctx, "aa01")
	must(t, err)
	same(t, "GetAdminSession", got, a)

	stale := *got
	got.Sealed, got.ExpiresAt = []byte("resealed with a new flash"), t0.Add(time.Hour)
	must(t, s.UpdateAdminSession(ctx, got))
	same(t, "Version after update", got.Version, int64(2))
	again, err := s.GetAdminSession(ctx, "aa01")
	must(t, err)
	same(t, "GetAdminSession after update", again, got)

	tests := []struct {
		name string
		err  error
		code string
	}{
		{"create taken hash", s.CreateAdminSession(ctx, adminSession("aa01", t0)), keyhold.EConflict},
		{"create without hash", s.CreateAdminSession(ctx, adminSession("", t0)), keyhold.EInvalid},
		{"create without contents", s.CreateAdminSession(ctx, &keyhold.AdminSession{IDHash: "aa02", ExpiresAt: t0, CreatedAt: t0}), keyhold.EInvalid},
		{"update at an old version", s.UpdateAdminSession(ctx, &stale), keyhold.EConflict},
		{"update a missing session", s.UpdateAdminSession(ctx, adminSession("aa03", t0)), keyhold.ENotFound},
		{"delete a missing session", s.DeleteAdminSession(ctx, "aa03"), keyhold.ENotFound},
	}
	for _, tt := range tests {
		wantCode(t, tt.name, tt.err, tt.code)
	}
	// Hashes are exact: they are hex the caller computed, not names.
	_, err = s.GetAdminSession(ctx, "AA01")
	wantCode(t, "GetAdminSession(other case)", err, keyhold.ENotFound)
	still, err := s.GetAdminSession(ctx, "aa01")
	must(t, err)
	same(t, "the session after refused writes", still, got)

	must(t, s.DeleteAdminSession(ctx, "aa01"))
	_, err = s.GetAdminSession(ctx, "aa01")
	wantCode(t, "GetAdminSession after delete", err, keyhold.ENotFound)
	wantCode(t, "update after delete", s.UpdateAdminSession(ctx, got), keyhold.ENotFound)
}

// testAdminSessionsExpired sweeps: sessions expiring at or before now go,
// later ones stay, and an expired session is still returned until swept
// (the caller decides what expired means with its own clock).
func testAdminSessionsExpired(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	now := t0.Add(time.Hour)
	sessions := []struct {
		hash    string
		expires time.Time
		swept   bool
	}{
		{"long-gone", t0.Add(-24 * time.Hour), true},
		{"just-ended", now, true},
		{"a-nanosecond-left", now.Add(time.Nanosecond), false},
		{"tomorrow", now.Add(24 * time.Hour), false},
	}
	for _, a := range sessions {
		must(t, s.CreateAdminSession(ctx, adminSession(a.hash, a.expires)))
	}
	if _, err := s.GetAdminSession(ctx, "long-gone"); err != nil {
		t.Errorf("an expired session before the sweep: %v", err)
	}
	n, err := s.DeleteExpiredAdminSessions(ctx, now)
	must(t, err)
	same(t, "swept", n, int64(2))
	for _, a := range sessions {
		_, err := s.GetAdminSession(ctx, a.hash)
		if a.swept {
			wantCode(t, a.hash+" after the sweep", err, keyhold.ENotFound)
		} else if err != nil {
			t.Errorf("%s after the sweep: %v", a.hash, err)
		}
	}
	n, err = s.DeleteExpiredAdminSessions(ctx, now)
	must(t, err)
	same(t, "swept again", n, int64(0))
}

// testAdminSessionsConcurrentUpdate races requests of one session served
// by different processes: exactly one writer at a version wins, every other
// is told EConflict, so that none overwrites another's flash unseen.
func testAdminSessionsConcurrentUpdate(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	a := adminSession("race", t0.Add(time.Hour))
	must(t, s.CreateAdminSession(ctx, a))
	codes := make([]string, 8)
	var wg sync.WaitGroup
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := *a
			c.Sealed = []byte(fmt.Sprint("writer ", i))
			codes[i] = keyhold.ErrorCode(s.UpdateAdminSession(ctx, &c))
		}()
	}
	wg.Wait()
	winner := -1
	for i, code := range codes {
		switch {
		case code == "" && winner >= 0:
			t.Errorf("writers %d and %d both won", winner, i)
		case code == "":
			winner = i
		case code != keyhold.EConflict:
			t.Errorf("writer %d: code %q, want success or conflict", i, code)
		}
	}
	if winner < 0 {
		t.Fatal("no writer won")
	}
	got, err := s.GetAdminSession(ctx, "race")
	must(t, err)
	same(t, "the winner's contents", string(got.Sealed), fmt.Sprint("writer ", winner))
	same(t, "Version", got.Version, int64(2))
}
