// Package kmstest is the conformance suite of kms.Wrapper drivers: every
// driver's tests call Run, so that the platform can rely on one behaviour
// whatever vault holds the key.
package kmstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"strings"
	"sync"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/kms"
)

// Fixture is what a driver's test gives the suite: a wrapper and refs it can
// use. Each call of the constructor passed to Run returns a fresh one.
type Fixture struct {
	// Wrapper is the driver under test.
	Wrapper kms.Wrapper
	// Ref names a key the wrapper can wrap and unwrap with. Its KeyVersion
	// may be "" (the newest version).
	Ref keyhold.WrapRef
	// Other names another key the wrapper can use, for the wrong-key
	// checks; a zero Other skips them.
	Other keyhold.WrapRef
	// Deny takes away Ref's usability for good, as a customer would by
	// disabling the key or removing access; nil skips the denial checks.
	Deny func(t *testing.T)
	// Cut makes the vault unreachable (a network failure, the vault's
	// store down); nil skips the unreachable checks.
	Cut func(t *testing.T)
}

// Run runs the conformance suite against fixtures from newFixture. The
// cases run in parallel, each with its own fixture, so fixtures must not
// share state that one case changes (Deny, above all).
func Run(t *testing.T, newFixture func(t *testing.T) *Fixture) {
	for _, c := range []struct {
		name string
		run  func(*testing.T, *Fixture)
	}{
		{"RoundTrip", testRoundTrip},
		{"Check", testCheck},
		{"WrongKey", testWrongKey},
		{"Tampered", testTampered},
		{"BadRefs", testBadRefs},
		{"Concurrent", testConcurrent},
		{"Denied", testDenied},
		{"Unreachable", testUnreachable},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, newFixture(t))
		})
	}
}

func randomSecret(t *testing.T, n int) (keyhold.Secret, []byte) {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return keyhold.NewSecret(bytes.Clone(b)), b
}

// wrap wraps a fresh 32-byte secret with ref and checks what comes back.
func wrap(t *testing.T, f *Fixture, ref keyhold.WrapRef) ([]byte, keyhold.WrapRef, []byte) {
	t.Helper()
	secret, plain := randomSecret(t, 32)
	wrapped, used, err := f.Wrapper.Wrap(context.Background(), ref, secret)
	if err != nil {
		t.Fatalf("Wrap(%s): %v", kms.Describe(ref), err)
	}
	if !bytes.Equal(secret.Reveal(), plain) {
		t.Fatal("Wrap changed the plaintext it was given")
	}
	if len(wrapped) == 0 || bytes.Contains(wrapped, plain[:16]) {
		t.Fatalf("Wrap returned %d bytes that are empty or contain the plaintext", len(wrapped))
	}
	if used.Kind != ref.Kind || used.VaultID != ref.VaultID || !strings.EqualFold(used.KeyName, ref.KeyName) || used.PolicyID != ref.PolicyID {
		t.Errorf("Wrap used %+v, want the key of %+v", used, ref)
	}
	if used.KeyVersion == "" || (ref.KeyVersion != "" && used.KeyVersion != ref.KeyVersion) {
		t.Errorf("Wrap used version %q for a ref with version %q; want a concrete version", used.KeyVersion, ref.KeyVersion)
	}
	if used.Algorithm == "" {
		t.Error("Wrap's ref names no algorithm")
	}
	return wrapped, used, plain
}

func testRoundTrip(t *testing.T, f *Fixture) {
	ctx := context.Background()
	wrapped, used, plain := wrap(t, f, f.Ref)
	got, err := f.Wrapper.Unwrap(ctx, used, wrapped)
	if err != nil {
		t.Fatalf("Unwrap: %v", err)
	}
	if !bytes.Equal(got.Reveal(), plain) {
		t.Fatal("Unwrap returned other bytes than were wrapped")
	}
	// Wrapping with the concrete ref works as well and unwraps the same.
	wrapped2, used2, plain2 := wrap(t, f, used)
	if used2 != used {
		t.Errorf("Wrap with a concrete ref used %+v, want %+v", used2, used)
	}
	got, err = f.Wrapper.Unwrap(ctx, used, wrapped2)
	if err != nil || !bytes.Equal(got.Reveal(), plain2) {
		t.Fatalf("Unwrap of the second value: %v", err)
	}
	for _, n := range []int{16, 64} {
		secret, plain := randomSecret(t, n)
		w, u, err := f.Wrapper.Wrap(ctx, f.Ref, secret)
		if err != nil {
			t.Fatalf("Wrap %d bytes: %v", n, err)
		}
		got, err := f.Wrapper.Unwrap(ctx, u, w)
		if err != nil || !bytes.Equal(got.Reveal(), plain) {
			t.Fatalf("round trip of %d bytes: %v", n, err)
		}
	}
}

func testCheck(t *testing.T, f *Fixture) {
	ctx := context.Background()
	if err := f.Wrapper.Check(ctx, f.Ref); err != nil {
		t.Fatalf("Check(%s): %v", kms.Describe(f.Ref), err)
	}
	_, used, _ := wrap(t, f, f.Ref)
	if err := f.Wrapper.Check(ctx, used); err != nil {
		t.Fatalf("Check(%s): %v", kms.Describe(used), err)
	}
}

func testWrongKey(t *testing.T, f *Fixture) {
	ctx := context.Background()
	wrapped, used, _ := wrap(t, f, f.Ref)

	noVersion := used
	noVersion.KeyVersion = ""
	if _, err := f.Wrapper.Unwrap(ctx, noVersion, wrapped); keyhold.ErrorCode(err) != keyhold.EInvalid {
		t.Errorf("Unwrap without a version: err = %v, want invalid", err)
	}
	missing := used
	missing.KeyVersion = strings.Repeat("0f", 16)
	if s, err := f.Wrapper.Unwrap(ctx, missing, wrapped); err == nil || !s.IsZero() {
		t.Errorf("Unwrap with a version that does not exist: err = %v", err)
	}
	if f.Other == (keyhold.WrapRef{}) {
		return
	}
	_, other, _ := wrap(t, f, f.Other)
	s, err := f.Wrapper.Unwrap(ctx, other, wrapped)
	if err == nil || !s.IsZero() {
		t.Fatalf("Unwrap with another key succeeded")
	}
	if c := keyhold.ErrorCode(err); c != keyhold.EInvalid {
		t.Errorf("Unwrap with another key: code %q (%v), want invalid: the value, not the key, is wrong", c, err)
	}
}

func testTampered(t *testing.T, f *Fixture) {
	ctx := context.Background()
	wrapped, used, _ := wrap(t, f, f.Ref)
	flip := func(i int) []byte { b := bytes.Clone(wrapped); b[i] ^= 0x80; return b }
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"first byte flipped", flip(0)},
		{"last byte flipped", flip(len(wrapped) - 1)},
		{"middle byte flipped", flip(len(wrapped) / 2)},
		{"truncated", wrapped[:len(wrapped)-1]},
		{"extended", append(bytes.Clone(wrapped), 0)},
		{"empty", nil},
	} {
		s, err := f.Wrapper.Unwrap(ctx, used, tc.b)
		if err == nil || !s.IsZero() {
			t.Errorf("%s: Unwrap succeeded", tc.name)
			continue
		}
		if c := keyhold.ErrorCode(err); c != keyhold.EInvalid {
			t.Errorf("%s: code %q (%v), want invalid: a damaged value must not lock the environment", tc.name, c, err)
		}
	}
}

func testBadRefs(t *testing.T, f *Fixture) {
	ctx := context.Background()
	secret, _ := randomSecret(t, 32)
	wrapped, used, _ := wrap(t, f, f.Ref)
	noKey := used
	noKey.KeyName = ""
	noVault := used
	noVault.VaultID = ""
	for _, tc := range []struct {
		name string
		ref  keyhold.WrapRef
	}{
		{"zero", keyhold.WrapRef{}},
		{"unknown kind", keyhold.WrapRef{Kind: "hsm-of-my-own", VaultID: used.VaultID, KeyName: used.KeyName, KeyVersion: used.KeyVersion}},
		{"no key name", noKey},
		{"no vault", noVault},
	} {
		if _, _, err := f.Wrapper.Wrap(ctx, tc.ref, secret); keyhold.ErrorCode(err) != keyhold.EInvalid {
			t.Errorf("%s: Wrap err = %v, want invalid", tc.name, err)
		}
		if _, err := f.Wrapper.Unwrap(ctx, tc.ref, wrapped); keyhold.ErrorCode(err) != keyhold.EInvalid {
			t.Errorf("%s: Unwrap err = %v, want invalid", tc.name, err)
		}
		if err := f.Wrapper.Check(ctx, tc.ref); keyhold.ErrorCode(err) != keyhold.EInvalid {
			t.Errorf("%s: Check err = %v, want invalid", tc.name, err)
		}
	}
	if _, _, err := f.Wrapper.Wrap(ctx, f.Ref, keyhold.Secret{}); keyhold.ErrorCode(err) != keyhold.EInvalid {
		t.Errorf("Wrap of an empty secret: err = %v, want invalid", err)
	}
}

func testConcurrent(t *testing.T, f *Fixture) {
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := make([]byte, 32)
			_, _ = rand.Read(b)
			w, u, err := f.Wrapper.Wrap(ctx, f.Ref, keyhold.NewSecret(bytes.Clone(b)))
			if err != nil {
				errs <- "Wrap: " + err.Error()
				return
			}
			got, err := f.Wrapper.Unwrap(ctx, u, w)
			if err != nil || !bytes.Equal(got.Reveal(), b) {
				errs <- "Unwrap failed or differs"
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func testDenied(t *testing.T, f *Fixture) {
	if f.Deny == nil {
		t.Skip("the fixture cannot deny access")
	}
	ctx := context.Background()
	wrapped, used, _ := wrap(t, f, f.Ref)
	f.Deny(t)
	secret, _ := randomSecret(t, 32)
	_, _, err := f.Wrapper.Wrap(ctx, f.Ref, secret)
	if !kms.Denied(err) {
		t.Errorf("Wrap after denial: err = %v, want forbidden", err)
	}
	s, err := f.Wrapper.Unwrap(ctx, used, wrapped)
	if !kms.Denied(err) || !s.IsZero() {
		t.Errorf("Unwrap after denial: err = %v, want forbidden", err)
	}
	if err := f.Wrapper.Check(ctx, f.Ref); !kms.Denied(err) {
		t.Errorf("Check after denial: err = %v, want forbidden", err)
	}
	if err := f.Wrapper.Check(ctx, used); !kms.Denied(err) {
		t.Errorf("Check of the version used after denial: err = %v, want forbidden", err)
	}
}

func testUnreachable(t *testing.T, f *Fixture) {
	if f.Cut == nil {
		t.Skip("the fixture cannot cut the vault off")
	}
	ctx := context.Background()
	wrapped, used, _ := wrap(t, f, f.Ref)
	f.Cut(t)
	secret, _ := randomSecret(t, 32)
	if _, _, err := f.Wrapper.Wrap(ctx, f.Ref, secret); !kms.Unreachable(err) {
		t.Errorf("Wrap with the vault cut off: err = %v, want unavailable", err)
	}
	if s, err := f.Wrapper.Unwrap(ctx, used, wrapped); !kms.Unreachable(err) || !s.IsZero() {
		t.Errorf("Unwrap with the vault cut off: err = %v, want unavailable, not a lock", err)
	}
	if err := f.Wrapper.Check(ctx, f.Ref); !kms.Unreachable(err) {
		t.Errorf("Check with the vault cut off: err = %v, want unavailable", err)
	}
}
