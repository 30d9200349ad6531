package envelope

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// fakeGens is an in-memory Generations.
type fakeGens map[string][]*keyhold.RootKeyGeneration

func (f fakeGens) ListGenerations(_ context.Context, env string) ([]*keyhold.RootKeyGeneration, error) {
	return f[env], nil
}

// fakeUnwrapper "unwraps" by reading the key from Wrapped, counting calls,
// optionally blocking until release is closed.
type fakeUnwrapper struct {
	calls   atomic.Int64
	release chan struct{}
	started chan struct{}
	err     error
}

func (u *fakeUnwrapper) Unwrap(ctx context.Context, g *keyhold.RootKeyGeneration) (keyhold.Secret, error) {
	u.calls.Add(1)
	if u.started != nil {
		u.started <- struct{}{}
	}
	if u.release != nil {
		<-u.release
	}
	if u.err != nil {
		return keyhold.Secret{}, u.err
	}
	return keyhold.NewSecret(bytes.Clone(g.Wrapped)), nil
}

func gensFor(env string, states ...string) fakeGens {
	f := fakeGens{}
	for i, st := range states {
		f[env] = append(f[env], &keyhold.RootKeyGeneration{EnvironmentID: env, Generation: int64(i + 1),
			Wrapped: bytes.Repeat([]byte{byte(i + 1)}, RootKeySize), State: st})
	}
	return f
}

func TestKeyringGetCachesAndCounts(t *testing.T) {
	u := &fakeUnwrapper{}
	kr := NewKeyring(gensFor("env-1", keyhold.GenerationRetiring, keyhold.GenerationActive), u)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		k, err := kr.Get(ctx, "env-1", 2)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if !k.Equal(testKey(2)) {
			t.Fatalf("Get returned the wrong key")
		}
		k.Wipe() // the caller's copy; the cached key must survive
	}
	// Case of the environment id does not matter.
	if _, err := kr.Get(ctx, "ENV-1", 2); err != nil {
		t.Fatalf("Get upper case: %v", err)
	}
	got := kr.Stats()
	want := KeyringStats{Hits: 5, Misses: 1, Unwraps: 1, Keys: 1}
	if got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
	if u.calls.Load() != 1 {
		t.Errorf("unwrapper called %d times, want 1", u.calls.Load())
	}
}

func TestKeyringGetErrors(t *testing.T) {
	denied := keyhold.Errorf(keyhold.EForbidden, "vault: access denied")
	for _, tc := range []struct {
		name       string
		gens       fakeGens
		gen        int64
		unwrapErr  error
		wantCode   string
		wantDetail string
	}{
		{"unknown generation", gensFor("e", keyhold.GenerationActive), 7, nil, keyhold.ENotFound, DetailGenerationNotFound},
		{"unknown environment", fakeGens{}, 1, nil, keyhold.ENotFound, DetailGenerationNotFound},
		{"destroyed", gensFor("e", keyhold.GenerationDestroyed, keyhold.GenerationActive), 1, nil, keyhold.ENotFound, DetailGenerationDestroyed},
		{"denied", gensFor("e", keyhold.GenerationActive), 1, denied, keyhold.EForbidden, ""},
		{"unreachable", gensFor("e", keyhold.GenerationActive), 1, keyhold.Errorf(keyhold.EUnavailable, "down"), keyhold.EUnavailable, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kr := NewKeyring(tc.gens, &fakeUnwrapper{err: tc.unwrapErr})
			_, err := kr.Get(context.Background(), "e", tc.gen)
			if keyhold.ErrorCode(err) != tc.wantCode || keyhold.ErrorDetail(err) != tc.wantDetail {
				t.Errorf("err = %v (%s/%s), want %s/%s", err, keyhold.ErrorCode(err), keyhold.ErrorDetail(err), tc.wantCode, tc.wantDetail)
			}
			if kr.Stats().Keys != 0 {
				t.Error("a failed Get cached a key")
			}
		})
	}
	// A wrong-sized unwrapped key is refused.
	g := gensFor("e", keyhold.GenerationActive)
	g["e"][0].Wrapped = []byte("short")
	if _, err := NewKeyring(g, &fakeUnwrapper{}).Get(context.Background(), "e", 1); keyhold.ErrorCode(err) != keyhold.EInternal {
		t.Errorf("short key: err = %v, want internal", err)
	}
}

func TestKeyringSingleflight(t *testing.T) {
	u := &fakeUnwrapper{release: make(chan struct{}), started: make(chan struct{}, 100)}
	kr := NewKeyring(gensFor("e", keyhold.GenerationActive), u)
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := kr.Get(context.Background(), "e", 1)
			if err == nil && !k.Equal(testKey(1)) {
				err = errors.New("wrong key")
			}
			errs <- err
		}()
	}
	<-u.started
	// Let every goroutine reach Get before the unwrap finishes.
	for kr.Stats().Misses < n {
		time.Sleep(time.Millisecond)
	}
	close(u.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := u.calls.Load(); got != 1 {
		t.Errorf("unwrapper called %d times for %d concurrent misses, want 1", got, n)
	}
}

func TestKeyringWaiterCancel(t *testing.T) {
	u := &fakeUnwrapper{release: make(chan struct{}), started: make(chan struct{}, 1)}
	kr := NewKeyring(gensFor("e", keyhold.GenerationActive), u)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { _, err := kr.Get(ctx, "e", 1); done <- err }()
	<-u.started
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Get: err = %v", err)
	}
	// The unwrap goes on for the others, and its result is kept.
	close(u.release)
	if _, err := kr.Get(context.Background(), "e", 1); err != nil {
		t.Fatal(err)
	}
	if got := u.calls.Load(); got != 1 {
		t.Errorf("unwrapper called %d times, want 1", got)
	}
}

func TestKeyringWipe(t *testing.T) {
	gens := gensFor("a", keyhold.GenerationRetiring, keyhold.GenerationActive)
	gens["b"] = gensFor("b", keyhold.GenerationActive)["b"]
	u := &fakeUnwrapper{}
	kr := NewKeyring(gens, u)
	ctx := context.Background()
	held, _ := kr.Get(ctx, "a", 1)
	for _, k := range []struct {
		env string
		gen int64
	}{{"a", 2}, {"b", 1}} {
		if _, err := kr.Get(ctx, k.env, k.gen); err != nil {
			t.Fatal(err)
		}
	}
	// Keep a reference to the cached secret to see it zeroed.
	kr.mu.Lock()
	cached := kr.keys[keyOf("a", 1)]
	kr.mu.Unlock()

	kr.Wipe("A")
	if !bytes.Equal(cached.Reveal(), make([]byte, RootKeySize)) {
		t.Error("Wipe did not zero the cached key")
	}
	if !held.Equal(testKey(1)) {
		t.Error("Wipe zeroed a copy a caller held")
	}
	if got := kr.Stats().Keys; got != 1 {
		t.Errorf("keys after Wipe(a) = %d, want 1 (b's)", got)
	}
	before := u.calls.Load()
	if _, err := kr.Get(ctx, "b", 1); err != nil || u.calls.Load() != before {
		t.Errorf("b after Wipe(a): err %v, unwraps %d -> %d", err, before, u.calls.Load())
	}
	if _, err := kr.Get(ctx, "a", 2); err != nil || u.calls.Load() != before+1 {
		t.Errorf("a after Wipe(a) should unwrap again: err %v, unwraps %d -> %d", err, before, u.calls.Load())
	}
	kr.WipeAll()
	if got := kr.Stats(); got.Keys != 0 || got.Wipes != 4 {
		t.Errorf("after WipeAll: %+v, want 0 keys and 4 wipes (a1, a2, then b1 and a2 again)", got)
	}
}

// TestKeyringWipeDuringUnwrap: a lock that lands while an unwrap is in
// flight must win; the key must not come back into the cache.
func TestKeyringWipeDuringUnwrap(t *testing.T) {
	for _, all := range []bool{false, true} {
		u := &fakeUnwrapper{release: make(chan struct{}), started: make(chan struct{}, 1)}
		kr := NewKeyring(gensFor("e", keyhold.GenerationActive), u)
		done := make(chan error)
		go func() { _, err := kr.Get(context.Background(), "e", 1); done <- err }()
		<-u.started
		if all {
			kr.WipeAll()
		} else {
			kr.Wipe("e")
		}
		close(u.release)
		err := <-done
		if keyhold.ErrorDetail(err) != DetailKeysWiped {
			t.Errorf("all=%v: err = %v, want %s", all, err, DetailKeysWiped)
		}
		if kr.Stats().Keys != 0 {
			t.Errorf("all=%v: the key came back after the wipe", all)
		}
	}
}

func TestKeyringPutDrop(t *testing.T) {
	u := &fakeUnwrapper{}
	kr := NewKeyring(fakeGens{}, u)
	ctx := context.Background()
	if err := kr.Put("e", 3, keyhold.NewSecret([]byte("short"))); keyhold.ErrorCode(err) != keyhold.EInvalid {
		t.Errorf("Put short key: err = %v", err)
	}
	key := testKey(3)
	if err := kr.Put("e", 3, key); err != nil {
		t.Fatal(err)
	}
	key.Wipe() // Put keeps its own copy
	got, err := kr.Get(ctx, "e", 3)
	if err != nil || !got.Equal(testKey(3)) || u.calls.Load() != 0 {
		t.Fatalf("Get after Put: %v, unwraps %d", err, u.calls.Load())
	}
	kr.Drop("e", 3)
	if _, err := kr.Get(ctx, "e", 3); !keyhold.IsNotFound(err) {
		t.Errorf("Get after Drop: err = %v, want not found (no such generation in the store)", err)
	}
}

func TestKeyringSealOpen(t *testing.T) {
	kr := NewKeyring(gensFor("e", keyhold.GenerationRetiring, keyhold.GenerationActive), &fakeUnwrapper{})
	ctx := context.Background()
	b := RowBinding("e", "t", "r")
	old, err := kr.Seal(ctx, 1, b, []byte("old"))
	if err != nil {
		t.Fatal(err)
	}
	cur, err := kr.Seal(ctx, 2, b, []byte("new"))
	if err != nil {
		t.Fatal(err)
	}
	for sealed, want := range map[*[]byte]string{&old: "old", &cur: "new"} {
		got, err := kr.Open(ctx, b, *sealed)
		if err != nil || string(got) != want {
			t.Errorf("Open = %q, %v; want %q", got, err, want)
		}
	}
	// The keyring's own copies survive Seal and Open wiping theirs.
	if got := kr.Stats(); got.Keys != 2 || got.Unwraps != 2 {
		t.Errorf("Stats = %+v", got)
	}
	if _, err := kr.Seal(ctx, 9, b, nil); !keyhold.IsNotFound(err) {
		t.Errorf("Seal under a missing generation: err = %v", err)
	}
}
