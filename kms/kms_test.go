package kms_test

import (
	"context"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/envelope"
	"github.com/keyhold/keyhold/kms"
	"github.com/keyhold/keyhold/kms/kmstest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var memRef = keyhold.WrapRef{Kind: keyhold.WrapCustomer, PolicyID: "/policies/p1", VaultID: "/vaults/v1", KeyName: "cmk"}

func memoryFixture(t *testing.T) *kmstest.Fixture {
	m := kmstest.NewMemory()
	m.AddKey(memRef)
	other := memRef
	other.KeyName = "other"
	m.AddKey(other)
	return &kmstest.Fixture{Wrapper: m, Ref: memRef, Other: other,
		Deny: func(*testing.T) { m.SetEnabled(memRef.VaultID, memRef.KeyName, false) },
		Cut:  func(*testing.T) { m.SetUnreachable(true) }}
}

// TestMemoryConformance runs the suite against the in-memory wrapper, and
// through Counted, which must change nothing but the counts.
func TestMemoryConformance(t *testing.T) {
	kmstest.Run(t, memoryFixture)
	t.Run("Counted", func(t *testing.T) {
		kmstest.Run(t, func(t *testing.T) *kmstest.Fixture {
			f := memoryFixture(t)
			f.Wrapper = kms.Counted(f.Wrapper, kms.NewMetrics())
			return f
		})
	})
}

func TestCheckRef(t *testing.T) {
	full := keyhold.WrapRef{Kind: keyhold.WrapCustomer, PolicyID: "p", VaultID: "v", KeyName: "k", KeyVersion: "1"}
	mod := func(f func(*keyhold.WrapRef)) keyhold.WrapRef { r := full; f(&r); return r }
	for _, tc := range []struct {
		name      string
		ref       keyhold.WrapRef
		forUnwrap bool
		wantMsg   string // "" means valid
	}{
		{"customer", full, true, ""},
		{"platform without policy", mod(func(r *keyhold.WrapRef) { r.Kind, r.PolicyID = keyhold.WrapPlatform, "" }), true, ""},
		{"byok", mod(func(r *keyhold.WrapRef) { r.Kind = keyhold.WrapBYOK }), false, ""},
		{"newest version to wrap", mod(func(r *keyhold.WrapRef) { r.KeyVersion = "" }), false, ""},
		{"newest version to unwrap", mod(func(r *keyhold.WrapRef) { r.KeyVersion = "" }), true, "needs the version it wrapped with"},
		{"no kind", mod(func(r *keyhold.WrapRef) { r.Kind = "" }), false, "has no kind"},
		{"unknown kind", mod(func(r *keyhold.WrapRef) { r.Kind = "hsm" }), false, `unknown key ref kind "hsm"`},
		{"customer without policy", mod(func(r *keyhold.WrapRef) { r.PolicyID = " " }), false, "names no policy"},
		{"no vault", mod(func(r *keyhold.WrapRef) { r.VaultID = "" }), false, "names no vault"},
		{"no key", mod(func(r *keyhold.WrapRef) { r.KeyName = "" }), false, "names no key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := kms.CheckRef(tc.ref, tc.forUnwrap)
			if tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("CheckRef = %v, want nil", err)
				}
				return
			}
			if keyhold.ErrorCode(err) != keyhold.EInvalid || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("CheckRef = %v, want invalid with %q", err, tc.wantMsg)
			}
		})
	}
}

func TestClassification(t *testing.T) {
	for _, tc := range []struct {
		err             error
		denied, unreach bool
		outcome         string
	}{
		{nil, false, false, kms.OutcomeOK},
		{keyhold.Errorf(keyhold.EForbidden, "x"), true, false, kms.OutcomeDenied},
		{keyhold.Errorf(keyhold.EUnavailable, "x"), false, true, kms.OutcomeUnavailable},
		{keyhold.Errorf(keyhold.EInvalid, "x"), false, false, kms.OutcomeInvalid},
		{keyhold.Errorf(keyhold.ENotFound, "x"), false, false, kms.OutcomeError},
		{context.Canceled, false, false, kms.OutcomeError},
	} {
		if kms.Denied(tc.err) != tc.denied || kms.Unreachable(tc.err) != tc.unreach || kms.Outcome(tc.err) != tc.outcome {
			t.Errorf("%v: Denied %v Unreachable %v Outcome %q; want %v %v %q", tc.err,
				kms.Denied(tc.err), kms.Unreachable(tc.err), kms.Outcome(tc.err), tc.denied, tc.unreach, tc.outcome)
		}
	}
}

func TestMetricsCountCallsByKindAndOutcome(t *testing.T) {
	mem := kmstest.NewMemory()
	ref := mem.AddKey(memRef)
	m := kms.NewMetrics()
	w := kms.Counted(mem, m)
	ctx := context.Background()
	wrapped, used, err := w.Wrap(ctx, ref, keyhold.NewSecret(make([]byte, 32)))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := w.Unwrap(ctx, used, wrapped); err != nil {
			t.Fatal(err)
		}
	}
	_ = w.Check(ctx, ref)
	mem.SetEnabled(ref.VaultID, ref.KeyName, false)
	_, _ = w.Unwrap(ctx, used, wrapped)
	mem.SetUnreachable(true)
	_ = w.Check(ctx, ref)

	for _, tc := range []struct {
		kind, outcome string
		want          uint64
	}{
		{kms.CallWrap, kms.OutcomeOK, 1},
		{kms.CallUnwrap, kms.OutcomeOK, 3},
		{kms.CallUnwrap, kms.OutcomeDenied, 1},
		{kms.CallCheck, kms.OutcomeOK, 1},
		{kms.CallCheck, kms.OutcomeUnavailable, 1},
	} {
		if got := m.CallsWith(tc.kind, tc.outcome); got != tc.want {
			t.Errorf("CallsWith(%s, %s) = %d, want %d", tc.kind, tc.outcome, got, tc.want)
		}
	}
	if got := m.Calls(kms.CallUnwrap); got != 4 {
		t.Errorf("Calls(unwrap) = %d, want 4", got)
	}

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	want := `
# HELP keyhold_kms_calls_total Calls to key vaults to wrap, unwrap or check root-key wrapping keys, by kind and outcome.
# TYPE keyhold_kms_calls_total counter
keyhold_kms_calls_total{kind="check",outcome="ok"} 1
keyhold_kms_calls_total{kind="check",outcome="unavailable"} 1
keyhold_kms_calls_total{kind="unwrap",outcome="denied"} 1
keyhold_kms_calls_total{kind="unwrap",outcome="ok"} 3
keyhold_kms_calls_total{kind="wrap",outcome="ok"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "keyhold_kms_calls_total"); err != nil {
		t.Error(err)
	}
}

// TestWarmDataPathMakesNoVaultCalls wires the keyring to a counted wrapper
// as the platform does: after the first read of a generation, reads and
// writes make no vault call at all, and a lock (Wipe) makes the next read
// ask the vault again, which then says no.
func TestWarmDataPathMakesNoVaultCalls(t *testing.T) {
	ctx := context.Background()
	mem := kmstest.NewMemory()
	ref := mem.AddKey(memRef)
	m := kms.NewMetrics()
	w := kms.Counted(mem, m)

	root, err := envelope.NewRootKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	wrapped, used, err := w.Wrap(ctx, ref, root)
	if err != nil {
		t.Fatal(err)
	}
	gens := generations{"env-1": {{EnvironmentID: "env-1", Generation: 1, Wrapped: wrapped, WrappedBy: used, State: keyhold.GenerationActive}}}
	kr := envelope.NewKeyring(gens, kms.GenerationUnwrapper{Wrapper: w})

	b := envelope.RowBinding("env-1", "accounts", "r1")
	sealed, err := kr.Seal(ctx, 1, b, []byte("row"))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Calls(kms.CallUnwrap); got != 1 {
		t.Fatalf("first use: %d unwrap calls, want 1", got)
	}
	for i := 0; i < 100; i++ {
		if _, err := kr.Open(ctx, b, sealed); err != nil {
			t.Fatal(err)
		}
		if _, err := kr.Seal(ctx, 1, b, []byte("row")); err != nil {
			t.Fatal(err)
		}
	}
	if got := m.Calls(kms.CallUnwrap) + m.Calls(kms.CallWrap) + m.Calls(kms.CallCheck); got != 2 {
		t.Errorf("vault calls after 200 warm operations = %d, want 2 (the first wrap and unwrap)", got)
	}

	mem.SetEnabled(ref.VaultID, ref.KeyName, false)
	kr.Wipe("env-1")
	if _, err := kr.Open(ctx, b, sealed); !kms.Denied(err) {
		t.Errorf("Open after the key was disabled and the keys wiped: err = %v, want forbidden", err)
	}
	if got := m.CallsWith(kms.CallUnwrap, kms.OutcomeDenied); got != 1 {
		t.Errorf("denied unwraps = %d, want 1", got)
	}
}

type generations map[string][]*keyhold.RootKeyGeneration

func (g generations) ListGenerations(_ context.Context, env string) ([]*keyhold.RootKeyGeneration, error) {
	return g[env], nil
}

func TestGenerationUnwrapperWithoutWrappedKey(t *testing.T) {
	u := kms.GenerationUnwrapper{Wrapper: kmstest.NewMemory()}
	_, err := u.Unwrap(context.Background(), &keyhold.RootKeyGeneration{EnvironmentID: "e", Generation: 2})
	if !keyhold.IsNotFound(err) {
		t.Errorf("err = %v, want not found", err)
	}
}
