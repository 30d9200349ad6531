package environment

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/envelope"
	"github.com/keyhold/keyhold/kms"
	"github.com/keyhold/keyhold/policy"
	"github.com/keyhold/keyhold/rbac"
)

const (
	testSub    = "11111111-0000-4000-8000-000000000001"
	testVault  = "/subscriptions/11111111-0000-4000-8000-000000000001/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv"
	policyName = "cmk-policy"
)

var testPolicyID = "/subscriptions/" + testSub + "/resourceGroups/rg/providers/Microsoft.PowerPlatform/enterprisePolicies/" + policyName

// linked is an environment linked to an Encryption policy: its active
// generation 2 is wrapped by the policy's customer key.
type linked struct {
	env      *keyhold.Environment
	customer keyhold.WrapRef
}

func (f *fixture) putPolicy(t *testing.T, health string, detail *policy.HealthDetail) {
	t.Helper()
	props := policy.Properties{SystemID: policy.SystemIDFor("europe", "00000000-0000-4000-8000-0000000000aa"), HealthStatus: health, HealthDetail: detail,
		Encryption: &policy.Encryption{State: "Enabled", KeyVault: &policy.KeyVaultRef{ID: testVault, Key: policy.KeyRef{Name: "k1"}}}}
	b, _ := json.Marshal(props)
	r := &keyhold.Resource{ID: testPolicyID, SubscriptionID: testSub, ResourceGroup: "rg", Type: policy.ResourceType, Name: policyName,
		Location: "europe", Kind: policy.KindEncryption, Properties: b}
	if err := f.store.PutResource(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) setHealth(t *testing.T, status, reason string, definite bool) {
	t.Helper()
	f.clock.Add(time.Second) // history entries are ordered by time
	if err := f.svc.cfg.Policies.SetHealth(context.Background(), testPolicyID, status, policy.HealthDetail{Reason: reason, Definite: definite}); err != nil {
		t.Fatal(err)
	}
}

// link links e to the test policy the way the lifecycle leaves it.
func (f *fixture) link(t *testing.T, e *keyhold.Environment) linked {
	t.Helper()
	ctx := context.Background()
	customer := f.mem.AddKey(keyhold.WrapRef{Kind: keyhold.WrapCustomer, PolicyID: testPolicyID, VaultID: testVault, KeyName: "k1", Algorithm: kms.DefaultAlgorithm})
	root, err := envelope.NewRootKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	wrapped, used, err := f.mem.Wrap(ctx, customer, root)
	if err != nil {
		t.Fatal(err)
	}
	now := f.clock.Now()
	if err := f.store.CreateGeneration(ctx, &keyhold.RootKeyGeneration{EnvironmentID: e.ID, Generation: 2, Wrapped: wrapped, WrappedBy: used,
		State: keyhold.GenerationActive, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	cur, _ := f.store.GetEnvironment(ctx, e.ID)
	cur.PolicyID, cur.PolicySystemID, cur.LinkStatus = testPolicyID, policy.SystemIDFor("europe", "00000000-0000-4000-8000-0000000000aa"), LinkLinked
	cur.KeyManagedBy, cur.EncryptionStatus = keyhold.KeyManagedByCustomer, keyhold.EncryptionEncrypted
	if err := f.store.UpdateEnvironment(ctx, cur); err != nil {
		t.Fatal(err)
	}
	f.svc.Invalidate(e.ID)
	return linked{env: cur, customer: used}
}

func (f *fixture) grantReader(t *testing.T, c *keyhold.Caller) {
	t.Helper()
	reader, _ := rbac.RoleByName(rbac.RoleReader)
	if err := f.store.CreateRoleAssignment(context.Background(), &keyhold.RoleAssignment{Name: newGUID(), TenantID: c.TenantID, Scope: testPolicyID,
		RoleDefinitionID: reader.ID, PrincipalID: c.Principal.ID, PrincipalType: keyhold.PrincipalUser, CreatedAt: f.clock.Now(), UpdatedAt: f.clock.Now()}); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) mustOpen(t *testing.T, id string) {
	t.Helper()
	if _, err := f.svc.Open(context.Background(), f.admin, id, true); err != nil {
		t.Fatalf("Open(%s): %v", id, err)
	}
}

func (f *fixture) mustBeLocked(t *testing.T, id, reason string) {
	t.Helper()
	_, err := f.svc.Open(context.Background(), f.admin, id, false)
	wantCode(t, err, keyhold.EForbidden, DetailEnvironmentLocked)
	if !strings.Contains(keyhold.ErrorMessage(err), reason) {
		t.Fatalf("locked error %q does not say %q", keyhold.ErrorMessage(err), reason)
	}
}

func TestLockAtOnceOnDefiniteDenial(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.putPolicy(t, policy.HealthHealthy, nil)
	a := f.link(t, f.create(t, keyhold.EnvProduction))
	b := f.link(t, f.create(t, keyhold.EnvSandbox))
	unlinked := f.create(t, keyhold.EnvSandbox)
	for _, id := range []string{a.env.ID, b.env.ID, unlinked.ID} {
		f.mustOpen(t, id)
	}

	f.setHealth(t, policy.HealthUnhealthy, "the policy's identity has no access to key k1", true)
	if err := f.svc.PolicyHealthChanged(ctx, testPolicyID); err != nil {
		t.Fatal(err)
	}
	for _, l := range []linked{a, b} {
		f.mustBeLocked(t, l.env.ID, "no access to key k1")
		got, _ := f.store.GetEnvironment(ctx, l.env.ID)
		if got.RuntimeState != keyhold.RuntimeDisabled || got.LockedAt.IsZero() || !strings.Contains(got.LockReason, "no access to key k1") {
			t.Fatalf("stored %+v, want Disabled with a reason and a time", got)
		}
		ops, _ := f.store.ListOperations(ctx, l.env.ID)
		if len(ops) == 0 || ops[0].Type != OpTypeLock {
			t.Fatalf("newest history entry = %+v, want %s", ops, OpTypeLock)
		}
	}
	f.mustOpen(t, unlinked.ID)
	if n := f.svc.Keyring().Stats().Keys; n != 1 {
		t.Fatalf("keys in memory = %d, want only the unlinked environment's", n)
	}
}

func TestLockAfterGracePeriodWhenUnreachable(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.putPolicy(t, policy.HealthHealthy, nil)
	l := f.link(t, f.create(t, keyhold.EnvProduction))
	f.mustOpen(t, l.env.ID)

	f.setHealth(t, policy.HealthUnhealthy, "the key vault did not answer", false)
	if err := f.svc.PolicyHealthChanged(ctx, testPolicyID); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		advance time.Duration
		locked  bool
	}{
		{0, false},
		{9 * time.Minute, false},
		{59 * time.Second, false},
		{time.Second, true},
	}
	for _, st := range steps {
		f.clock.Add(st.advance)
		if err := f.svc.CheckGrace(ctx); err != nil {
			t.Fatal(err)
		}
		_, err := f.svc.Open(ctx, f.admin, l.env.ID, false)
		if got := err != nil; got != st.locked {
			t.Fatalf("after %v more: locked = %v (%v), want %v", st.advance, got, err, st.locked)
		}
	}
	f.mustBeLocked(t, l.env.ID, "could not be reached for 10m0s")
}

func TestGraceEndsWhenHealthReturns(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.putPolicy(t, policy.HealthHealthy, nil)
	l := f.link(t, f.create(t, keyhold.EnvProduction))
	f.setHealth(t, policy.HealthUnhealthy, "timeout", false)
	if err := f.svc.PolicyHealthChanged(ctx, testPolicyID); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(5 * time.Minute)
	f.setHealth(t, policy.HealthHealthy, "", false)
	if err := f.svc.PolicyHealthChanged(ctx, testPolicyID); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(time.Hour)
	if err := f.svc.CheckGrace(ctx); err != nil {
		t.Fatal(err)
	}
	f.mustOpen(t, l.env.ID)
}

func TestLockLoopFollowsPolicyEvents(t *testing.T) {
	f := newFixture(t)
	f.putPolicy(t, policy.HealthHealthy, nil)
	l := f.link(t, f.create(t, keyhold.EnvProduction))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.svc.RunLocks(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	f.mustOpen(t, l.env.ID)
	f.setHealth(t, policy.HealthUnhealthy, "key k1 is disabled", true) // publishes PolicyChanged
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := f.svc.Open(context.Background(), f.admin, l.env.ID, false)
		if keyhold.ErrorDetail(err) == DetailEnvironmentLocked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the environment was not locked after the policy turned unhealthy: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestReenableRules(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.putPolicy(t, policy.HealthHealthy, nil)
	l := f.link(t, f.create(t, keyhold.EnvProduction))
	f.mem.SetEnabled(testVault, "k1", false)
	f.setHealth(t, policy.HealthUnhealthy, "key k1 is disabled", true)
	if err := f.svc.PolicyHealthChanged(ctx, testPolicyID); err != nil {
		t.Fatal(err)
	}
	f.mustBeLocked(t, l.env.ID, "key k1 is disabled")
	user := f.principal(t, tenantA, "user")

	_, err := f.svc.Reenable(ctx, user, l.env.ID)
	wantCode(t, err, keyhold.ENotFound, detailEnvNotFound)
	_, err = f.svc.Reenable(ctx, f.admin, l.env.ID)
	wantCode(t, err, keyhold.EForbidden, detailPolicyReadRequired)
	f.grantReader(t, f.admin)
	_, err = f.svc.Reenable(ctx, f.admin, l.env.ID)
	wantCode(t, err, keyhold.EConflict, detailPolicyUnhealthy)
	// The health says healthy but the key still refuses: not re-enabled.
	f.setHealth(t, policy.HealthHealthy, "", false)
	_, err = f.svc.Reenable(ctx, f.admin, l.env.ID)
	wantCode(t, err, keyhold.EConflict, DetailKeyNotAccessible)
	f.mem.SetEnabled(testVault, "k1", true)
	before := f.metrics.Calls(kms.CallUnwrap)
	f.clock.Add(time.Second)
	e, err := f.svc.Reenable(ctx, f.admin, l.env.ID)
	if err != nil {
		t.Fatal(err)
	}
	if e.RuntimeState != keyhold.RuntimeEnabled || e.LockReason != "" || !e.LockedAt.IsZero() {
		t.Fatalf("re-enabled = %+v", e)
	}
	env, err := f.svc.Open(ctx, f.admin, l.env.ID, true)
	if err != nil || env.Active != 2 {
		t.Fatalf("Open after re-enable = %v, %v", env, err)
	}
	// The keys were proved and cached: sealing needs no further unwrap.
	if _, _, err := env.Seal(ctx, envelope.RowBinding(l.env.ID, "t", "1"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if got := f.metrics.Calls(kms.CallUnwrap) - before; got != 2 {
		t.Fatalf("unwraps for re-enable and a write = %d, want 2 (one per live generation, none for the write)", got)
	}
	_, err = f.svc.Reenable(ctx, f.admin, l.env.ID)
	wantCode(t, err, keyhold.EConflict, DetailEnvironmentNotLocked)
	ops, _ := f.store.ListOperations(ctx, l.env.ID)
	var types []string
	for _, op := range ops {
		types = append(types, op.Type)
	}
	if got, want := strings.Join(types, ","), OpTypeReenable+","+OpTypeLock+","+OpTypeCreate; got != want {
		t.Fatalf("history = %s, want %s", got, want)
	}
}

func TestAutoReenable(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.putPolicy(t, policy.HealthHealthy, nil)
	l := f.link(t, f.create(t, keyhold.EnvSandbox))
	f.setHealth(t, policy.HealthUnhealthy, "access removed", true)
	if err := f.svc.PolicyHealthChanged(ctx, testPolicyID); err != nil {
		t.Fatal(err)
	}
	f.setHealth(t, policy.HealthHealthy, "", false)
	if err := f.svc.PolicyHealthChanged(ctx, testPolicyID); err != nil {
		t.Fatal(err)
	}
	f.mustBeLocked(t, l.env.ID, "access removed") // the setting is off by default
	if err := f.svc.SetTenantSettings(ctx, f.admin, TenantSettings{AutoReenable: true}); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.PolicyHealthChanged(ctx, testPolicyID); err != nil {
		t.Fatal(err)
	}
	f.mustOpen(t, l.env.ID)
}

func TestRetentionWarnsThenDeletes(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.putPolicy(t, policy.HealthHealthy, nil)
	l := f.link(t, f.create(t, keyhold.EnvSandbox))
	f.setHealth(t, policy.HealthUnhealthy, "vault deleted", true)
	if err := f.svc.PolicyHealthChanged(ctx, testPolicyID); err != nil {
		t.Fatal(err)
	}
	sweep := func() {
		t.Helper()
		if err := f.svc.SweepRetention(ctx); err != nil {
			t.Fatal(err)
		}
	}
	f.clock.Add(30 * 24 * time.Hour)
	sweep() // retention is off: nothing happens, however long
	if _, err := f.store.GetEnvironment(ctx, l.env.ID); err != nil {
		t.Fatalf("deleted without retention: %v", err)
	}
	if err := f.svc.SetTenantSettings(ctx, f.admin, TenantSettings{Retention: true}); err != nil {
		t.Fatal(err)
	}
	sweep() // past due, but never warned: warn first
	if _, err := f.store.GetEnvironment(ctx, l.env.ID); err != nil {
		t.Fatalf("deleted without a warning: %v", err)
	}
	ops, _ := f.store.ListOperations(ctx, l.env.ID)
	warnings := 0
	for _, op := range ops {
		if op.Type == OpTypeRetention {
			warnings++
		}
	}
	if warnings != len(retentionWarnings) {
		t.Fatalf("warnings = %d, want %d", warnings, len(retentionWarnings))
	}
	sweep()
	if _, err := f.store.GetEnvironment(ctx, l.env.ID); !keyhold.IsNotFound(err) {
		t.Fatalf("after warnings and the retention period: %v, want deleted", err)
	}
}
