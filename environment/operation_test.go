package environment

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/envelope"
	"github.com/keyhold/keyhold/kms"
	"github.com/keyhold/keyhold/policy"
	"github.com/keyhold/keyhold/rbac"
)

const lcSub = "11111111-2222-4333-8444-555555555555"

// testPolicy is an Encryption policy of the fixture with its key.
type testPolicy struct {
	ID, SystemID string
	Key          keyhold.WrapRef // the key's ref in the memory wrapper (newest version)
}

// addPolicy stores an enterprise policy in tenant A's subscription and a
// key for it in the memory wrapper.
func (f *fixture) addPolicy(t *testing.T, name, location, kind, health string, pinned bool) testPolicy {
	t.Helper()
	ctx := context.Background()
	if _, err := f.store.GetSubscription(ctx, lcSub); keyhold.IsNotFound(err) {
		if err := f.store.CreateSubscription(ctx, &keyhold.Subscription{ID: lcSub, TenantID: tenantA, DisplayName: "sub", State: "Enabled"}); err != nil {
			t.Fatal(err)
		}
		if err := f.store.PutResourceGroup(ctx, &keyhold.ResourceGroup{SubscriptionID: lcSub, Name: "rg", Location: "westeurope"}); err != nil {
			t.Fatal(err)
		}
	}
	vault := "/subscriptions/" + lcSub + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v-" + name
	key := f.mem.AddKey(keyhold.WrapRef{Kind: keyhold.WrapCustomer, VaultID: vault, KeyName: "cmk"})
	kv := &policy.KeyVaultRef{ID: vault, Key: policy.KeyRef{Name: "cmk"}}
	if pinned {
		v := key.KeyVersion
		kv.Key.Version = &v
	}
	guid := newGUID()
	props := policy.Properties{SystemID: policy.SystemIDFor(location, guid), HealthStatus: health,
		Encryption: &policy.Encryption{KeyVault: kv, State: "Enabled"}}
	raw, _ := json.Marshal(props)
	ident, _ := json.Marshal(policy.Identity{Type: "SystemAssigned", PrincipalID: newGUID(), TenantID: tenantA})
	id := "/subscriptions/" + lcSub + "/resourceGroups/rg/providers/" + policy.ResourceType + "/" + name
	r := &keyhold.Resource{ID: id, SubscriptionID: lcSub, ResourceGroup: "rg", Type: policy.ResourceType, Name: name,
		Location: location, Kind: kind, Properties: raw, Identity: ident}
	if err := f.store.PutResource(ctx, r); err != nil {
		t.Fatal(err)
	}
	return testPolicy{ID: id, SystemID: props.SystemID, Key: key}
}

// grantPolicyReader gives c the Reader role on scope.
func (f *fixture) grantPolicyReader(t *testing.T, c *keyhold.Caller, scope string) {
	t.Helper()
	reader, ok := rbac.RoleByName("Reader")
	if !ok {
		t.Fatal("no Reader role")
	}
	a := &keyhold.RoleAssignment{Name: newGUID(), TenantID: c.TenantID, Scope: scope, RoleDefinitionID: reader.ID,
		PrincipalID: c.Principal.ID, PrincipalType: c.Principal.Type, CreatedAt: f.clock.Now(), UpdatedAt: f.clock.Now()}
	if err := f.store.CreateRoleAssignment(context.Background(), a); err != nil {
		t.Fatal(err)
	}
}

// seedRows writes n rows of about size bytes to table "accounts" of env
// through the data path's seal, and returns their contents by id.
func (f *fixture) seedRows(t testing.TB, envID string, n, size int) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	if err := f.store.CreateTable(ctx, &keyhold.Table{EnvironmentID: envID, Name: "accounts", CreatedAt: f.clock.Now()}); err != nil && !keyhold.IsConflict(err) {
		t.Fatal(err)
	}
	want := make(map[string][]byte, n)
	for i := range n {
		id := fmt.Sprintf("row-%06d", i)
		content := bytes.Repeat([]byte{byte('a' + i%26)}, size)
		copy(content, id)
		f.writeRow(t, envID, id, content, 0)
		want[id] = content
	}
	return want
}

// writeRow seals content under the environment's active generation and
// stores it (ifVersion as PutRow's).
func (f *fixture) writeRow(t testing.TB, envID, id string, content []byte, ifVersion int64) error {
	ctx := context.Background()
	env, err := f.svc.Open(ctx, f.admin, envID, true)
	if err != nil {
		return err
	}
	sealed, gen, err := env.Seal(ctx, envelope.RowBinding(envID, "accounts", id), content)
	if err != nil {
		return err
	}
	return f.store.PutRow(ctx, &keyhold.SealedRow{EnvironmentID: envID, Table: "accounts", ID: id, Generation: gen, Sealed: sealed,
		CreatedAt: f.clock.Now(), UpdatedAt: f.clock.Now()}, ifVersion)
}

// checkRows opens every row of env with a fresh keyring and compares it.
func (f *fixture) checkRows(t *testing.T, envID string, want map[string][]byte) {
	t.Helper()
	ctx := context.Background()
	ring := envelope.NewKeyring(f.store, kms.GenerationUnwrapper{Wrapper: f.mem})
	rows, err := f.store.ListRows(ctx, envID, "accounts", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d", len(rows), len(want))
	}
	for _, r := range rows {
		got, err := ring.Open(ctx, envelope.RowBinding(envID, r.Table, r.ID), r.Sealed)
		if err != nil {
			t.Fatalf("row %s: %v", r.ID, err)
		}
		if !bytes.Equal(got, want[r.ID]) {
			t.Fatalf("row %s = %.20q..., want %.20q...", r.ID, got, want[r.ID])
		}
	}
}

// runAll runs operations until none is due.
func (f *fixture) runAll(t *testing.T) {
	t.Helper()
	for range 100 {
		ran, err := f.svc.RunOnce(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !ran {
			return
		}
	}
	t.Fatal("operations kept coming")
}

func (f *fixture) op(t *testing.T, id string) *keyhold.Operation {
	t.Helper()
	op, err := f.store.GetOperation(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return op
}

func (f *fixture) env(t *testing.T, id string) *keyhold.Environment {
	t.Helper()
	e, err := f.store.GetEnvironment(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// linkable returns a fixture with a managed Production environment in
// europe and a Healthy policy the admin can read.
func linkable(t *testing.T) (*fixture, *keyhold.Environment, testPolicy) {
	f := newFixture(t)
	e := f.create(t, keyhold.EnvProduction)
	p := f.addPolicy(t, "ep1", "europe", policy.KindEncryption, policy.HealthHealthy, false)
	f.grantPolicyReader(t, f.admin, p.ID)
	return f, e, p
}

func TestOperationStateMachine(t *testing.T) {
	f, e, p := linkable(t)
	ctx := context.Background()
	op, err := f.svc.Link(ctx, f.admin, e.ID, strings.ToUpper(p.SystemID))
	if err != nil {
		t.Fatal(err)
	}
	if op.State != keyhold.OpNotStarted || op.Action != ActionLink || op.Type != TypeUpdateCMK {
		t.Fatalf("new op = %s %s %s, want NotStarted link %q", op.State, op.Action, op.Type, TypeUpdateCMK)
	}
	for _, sg := range RenderOperation(op).Stages {
		if sg.State.ID != keyhold.OpNotStarted {
			t.Fatalf("stage %s = %s before running, want NotStarted", sg.ID, sg.State.ID)
		}
	}
	// A second request while it is pending is the same operation.
	again, err := f.svc.Link(ctx, f.admin, e.ID, p.SystemID)
	if err != nil || again.ID != op.ID {
		// The environment is not linked yet, so the busy check answers.
		wantCode(t, err, keyhold.EConflict, DetailOperationInProgress)
	}
	f.runAll(t)
	got := RenderOperation(f.op(t, op.ID))
	if got.State.ID != keyhold.OpSucceeded || got.Error != nil {
		t.Fatalf("op state = %s (%+v), want Succeeded", got.State.ID, got.Error)
	}
	var ids []string
	for _, sg := range got.Stages {
		ids = append(ids, sg.ID+"="+sg.State.ID)
		if sg.FirstActionDateTime.IsZero() || sg.LastActionDateTime.IsZero() {
			t.Errorf("stage %s has no times", sg.ID)
		}
	}
	if want := "Validate=Succeeded Prepare=Succeeded Run=Succeeded Finalize=Succeeded"; strings.Join(ids, " ") != want {
		t.Fatalf("stages = %s, want %s", strings.Join(ids, " "), want)
	}
	env := f.env(t, e.ID)
	if env.KeyManagedBy != keyhold.KeyManagedByCustomer || env.EncryptionStatus != keyhold.EncryptionEncrypted ||
		env.LinkStatus != LinkStatusLinked || !strings.EqualFold(env.PolicyID, p.ID) || env.PolicySystemID != p.SystemID {
		t.Fatalf("environment after link = %+v", env)
	}
	// Linking to the same policy again is a no-op that succeeded.
	noop, err := f.svc.Link(ctx, f.admin, e.ID, p.SystemID)
	if err != nil {
		t.Fatal(err)
	}
	if noop.State != keyhold.OpSucceeded || noop.ID == op.ID {
		t.Fatalf("re-link = %s %s, want a new Succeeded operation", noop.ID, noop.State)
	}
	hist, err := f.svc.History(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, h := range hist {
		if h.Type == TypeUpdateCMK {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("history has %d %q entries, want 2", n, TypeUpdateCMK)
	}
}

// TestFailedLinkResumes: a link whose key is disabled mid-way fails with
// the reason (environment Failed), and linking again resumes and succeeds.
func TestFailedLinkResumes(t *testing.T) {
	f, e, p := linkable(t)
	ctx := context.Background()
	want := f.seedRows(t, e.ID, 300, 64)
	f.svc.cfg.Lifecycle.BatchSize = 50
	op, err := f.svc.Link(ctx, f.admin, e.ID, p.SystemID)
	if err != nil {
		t.Fatal(err)
	}
	batches := 0
	f.svc.lc().afterBatch = func(*keyhold.Operation) {
		if batches++; batches == 2 {
			// The environment's keys are wiped, as a lock does, and the
			// key is disabled: the next batch cannot unwrap.
			f.mem.SetEnabled(p.Key.VaultID, p.Key.KeyName, false)
			f.svc.ring.WipeAll()
		}
	}
	f.runAll(t)
	got := f.op(t, op.ID)
	if got.State != keyhold.OpFailed || !strings.Contains(got.Error, "disabled") {
		t.Fatalf("op = %s %q, want Failed saying the key is disabled", got.State, got.Error)
	}
	if env := f.env(t, e.ID); env.EncryptionStatus != keyhold.EncryptionFailed {
		t.Fatalf("encryption status = %s, want Failed", env.EncryptionStatus)
	}
	v := RenderOperation(got)
	if v.Error == nil || v.Error.Message != got.Error || v.Stages[2].State.ID != keyhold.OpFailed {
		t.Fatalf("rendered failure = %+v, stages %+v", v.Error, v.Stages)
	}
	doneBefore := got.Done
	f.svc.lc().afterBatch = nil
	f.mem.SetEnabled(p.Key.VaultID, p.Key.KeyName, true)
	op2, err := f.svc.Link(ctx, f.admin, e.ID, p.SystemID)
	if err != nil {
		t.Fatal(err)
	}
	f.runAll(t)
	if got := f.op(t, op2.ID); got.State != keyhold.OpSucceeded {
		t.Fatalf("re-run = %s %q, want Succeeded", got.State, got.Error)
	}
	gens, _ := f.store.ListGenerations(ctx, e.ID)
	if len(gens) != 2 || gens[1].State != keyhold.GenerationActive || gens[0].State != keyhold.GenerationDestroyed {
		t.Fatalf("generations after resume = %d, want 1 destroyed and 1 active (the re-run reuses the first run's generation)", len(gens))
	}
	if doneBefore < 100 {
		t.Fatalf("the failed run moved %d rows before failing, want at least 100", doneBefore)
	}
	f.checkRows(t, e.ID, want)
}

// TestReclaimLeasesOnStart: an operation a crashed run left leased is run
// at once by a worker on an exclusive store, and left alone (until its
// lease ends) on a shared one.
func TestReclaimLeasesOnStart(t *testing.T) {
	for _, tc := range []struct {
		name      string
		exclusive bool
		wantRan   bool
	}{
		{"exclusive store", true, true},
		{"shared store", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, e, p := linkable(t)
			ctx := context.Background()
			op, err := f.svc.Link(ctx, f.admin, e.ID, p.SystemID)
			if err != nil {
				t.Fatal(err)
			}
			now := f.clock.Now().UTC()
			if _, err := f.store.LeaseOperation(ctx, "keyhold", now, now.Add(DefaultLeaseDuration)); err != nil {
				t.Fatal(err) // the crashed run's lease
			}
			f.svc.cfg.Lifecycle.Exclusive = tc.exclusive
			if tc.exclusive {
				if err := f.svc.reclaimLeases(ctx); err != nil {
					t.Fatal(err)
				}
			}
			ran, err := f.svc.RunOnce(ctx)
			if err != nil || ran != tc.wantRan {
				t.Fatalf("RunOnce = %v, %v; want %v", ran, err, tc.wantRan)
			}
			if got := f.op(t, op.ID); (got.State == keyhold.OpSucceeded) != tc.wantRan {
				t.Errorf("operation %s after RunOnce, want succeeded %v", got.State, tc.wantRan)
			}
		})
	}
}
