package environment

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/envelope"
	"github.com/keyhold/keyhold/events"
	"github.com/keyhold/keyhold/internal/unitenv"
	"github.com/keyhold/keyhold/kms"
	"github.com/keyhold/keyhold/kms/kmstest"
	"github.com/keyhold/keyhold/policy"
	"github.com/keyhold/keyhold/rbac"
)

const (
	tenantA = "aaaaaaaa-0000-4000-8000-000000000001"
	tenantB = "bbbbbbbb-0000-4000-8000-000000000002"
)

type fixture struct {
	svc     *Service
	store   keyhold.Store
	mem     *kmstest.Memory
	metrics *kms.Metrics
	bus     *events.Bus
	clock   *unitenv.Clock
	admin   *keyhold.Caller // platform administrator of tenant A
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return fixtureOn(t, unitenv.SQLite(t, "keyhold.db"))
}

// fixtureOn is newFixture on a given store.
func fixtureOn(t *testing.T, st keyhold.Store) *fixture {
	t.Helper()
	mem := kmstest.NewMemory()
	platform := mem.AddKey(keyhold.WrapRef{Kind: keyhold.WrapPlatform, VaultID: "/system/vaults/platform", KeyName: "platform", Algorithm: kms.DefaultAlgorithm})
	platform.KeyVersion = "" // the newest version, as the server configures it
	m := kms.NewMetrics()
	bus := events.New(nil)
	clk := unitenv.NewClock(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC))
	svc := New(Config{
		Store: st, Wrapper: kms.Counted(mem, m), PlatformKey: platform,
		Policies: policy.New(policy.Config{Store: st, Events: bus, Now: clk.Now}),
		Authz:    rbac.New(st), Events: bus, Now: clk.Now,
	})
	f := &fixture{svc: svc, store: st, mem: mem, metrics: m, bus: bus, clock: clk}
	f.admin = f.principal(t, tenantA, "admin", keyhold.RolePowerPlatformAdministrator)
	return f
}

// principal creates a user in tenant with the directory roles and returns
// it as a caller.
func (f *fixture) principal(t *testing.T, tenant, name string, roles ...string) *keyhold.Caller {
	t.Helper()
	p := &keyhold.Principal{ID: newGUID(), TenantID: tenant, Type: keyhold.PrincipalUser, DisplayName: name,
		UserPrincipalName: name + "@" + tenant[:8] + ".example", DirectoryRoles: roles, CreatedAt: f.clock.Now()}
	if err := f.store.CreatePrincipal(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	return &keyhold.Caller{Principal: p, TenantID: tenant}
}

func (f *fixture) create(t *testing.T, typ string) *keyhold.Environment {
	t.Helper()
	e, err := f.svc.Create(context.Background(), f.admin, CreateRequest{DisplayName: "Contoso " + typ, Region: "europe", Type: typ, Managed: true})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func wantCode(t *testing.T, err error, code, detail string) {
	t.Helper()
	if got := keyhold.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
	if detail != "" {
		if got := keyhold.ErrorDetail(err); got != detail {
			t.Fatalf("error detail = %q (%v), want %q", got, err, detail)
		}
	}
}

func TestCreateUnderPlatformKey(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	e := f.create(t, keyhold.EnvSandbox)
	if e.KeyManagedBy != keyhold.KeyManagedByMicrosoft || e.EncryptionStatus != keyhold.EncryptionPlatform || e.RuntimeState != keyhold.RuntimeEnabled {
		t.Fatalf("new environment = %+v, want Microsoft-managed, NotApplicable, Enabled", e)
	}
	gens, err := f.store.ListGenerations(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(gens) != 1 || gens[0].Generation != 1 || gens[0].State != keyhold.GenerationActive || gens[0].WrappedBy.Kind != keyhold.WrapPlatform || gens[0].WrappedBy.KeyVersion == "" {
		t.Fatalf("generations = %+v, want generation 1 active under a concrete platform key version", gens)
	}
	if len(gens[0].Wrapped) == 0 {
		t.Fatal("generation 1 has no wrapped key")
	}
	// The first write needs no unwrap: the key went into the keyring.
	env, err := f.svc.Open(ctx, f.admin, e.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	b := envelope.RowBinding(e.ID, "account", "1")
	sealed, gen, err := env.Seal(ctx, b, []byte("hello"))
	if err != nil || gen != 1 {
		t.Fatalf("Seal = gen %d, %v", gen, err)
	}
	got, err := env.Open(ctx, b, sealed)
	if err != nil || string(got) != "hello" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if n := f.metrics.Calls(kms.CallUnwrap); n != 0 {
		t.Fatalf("unwrap calls = %d, want 0", n)
	}
	ops, err := f.store.ListOperations(ctx, e.ID)
	if err != nil || len(ops) != 1 || ops[0].Type != OpTypeCreate || ops[0].State != keyhold.OpSucceeded {
		t.Fatalf("history = %+v, %v, want one succeeded Create", ops, err)
	}
}

func TestCreateValidation(t *testing.T) {
	f := newFixture(t)
	user := f.principal(t, tenantA, "user")
	tests := []struct {
		name   string
		caller *keyhold.Caller
		req    CreateRequest
		code   string
	}{
		{"not an admin", user, CreateRequest{DisplayName: "x", Region: "europe", Type: "Sandbox"}, keyhold.EForbidden},
		{"no name", f.admin, CreateRequest{Region: "europe", Type: "Sandbox"}, keyhold.EInvalid},
		{"long name", f.admin, CreateRequest{DisplayName: string(make([]byte, 101)) + "x", Region: "europe", Type: "Sandbox"}, keyhold.EInvalid},
		{"bad region", f.admin, CreateRequest{DisplayName: "x", Region: "westeurope", Type: "Sandbox"}, keyhold.EInvalid},
		{"bad type", f.admin, CreateRequest{DisplayName: "x", Region: "europe", Type: "Default"}, keyhold.EInvalid},
		{"no caller", nil, CreateRequest{DisplayName: "x", Region: "europe", Type: "Sandbox"}, keyhold.EUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.svc.Create(context.Background(), tt.caller, tt.req)
			wantCode(t, err, tt.code, "")
		})
	}
	// Types and regions compare case-insensitively and come back canonical.
	e, err := f.svc.Create(context.Background(), f.admin, CreateRequest{DisplayName: " x ", Region: "Europe", Type: "sandbox"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Type != keyhold.EnvSandbox || e.Region != "europe" || e.DisplayName != "x" {
		t.Fatalf("got %q %q %q, want Sandbox europe x", e.Type, e.Region, e.DisplayName)
	}
}

func TestOpen(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	e := f.create(t, keyhold.EnvProduction)
	user := f.principal(t, tenantA, "user")
	maker := f.principal(t, tenantA, "maker")
	groupMember := f.principal(t, tenantA, "member")
	group := &keyhold.Principal{ID: newGUID(), TenantID: tenantA, Type: keyhold.PrincipalGroup, DisplayName: "readers"}
	if err := f.store.CreatePrincipal(ctx, group); err != nil {
		t.Fatal(err)
	}
	groupMember.GroupIDs = []string{group.ID}
	other := f.principal(t, tenantB, "admin", keyhold.RoleGlobalAdministrator)
	if _, err := f.svc.GrantRole(ctx, f.admin, e.ID, maker.Principal.ID, "Environment User"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.GrantRole(ctx, f.admin, e.ID, group.ID, RoleEnvironmentUser); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		caller *keyhold.Caller
		id     string
		code   string
		detail string
	}{
		{"platform admin", f.admin, e.ID, "", ""},
		{"id in upper case", f.admin, strings.ToUpper(e.ID), "", ""},
		{"environment user", maker, e.ID, "", ""},
		{"through a group", groupMember, e.ID, "", ""},
		{"no role", user, e.ID, keyhold.EForbidden, DetailEnvironmentAccess},
		{"other tenant's admin", other, e.ID, keyhold.ENotFound, detailEnvNotFound},
		{"no such environment", f.admin, newGUID(), keyhold.ENotFound, detailEnvNotFound},
		{"empty id", f.admin, "", keyhold.ENotFound, detailEnvNotFound},
		{"no caller", nil, e.ID, keyhold.EUnauthenticated, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := f.svc.Open(ctx, tt.caller, tt.id, true)
			if tt.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				if env.Active != 1 || env.Environment.ID != e.ID {
					t.Fatalf("Open = %s gen %d, want %s gen 1", env.Environment.ID, env.Active, e.ID)
				}
				return
			}
			wantCode(t, err, tt.code, tt.detail)
		})
	}

	// A revoked role stops the next request.
	if err := f.svc.RevokeRole(ctx, f.admin, e.ID, maker.Principal.ID); err != nil {
		t.Fatal(err)
	}
	_, err := f.svc.Open(ctx, maker, e.ID, false)
	wantCode(t, err, keyhold.EForbidden, DetailEnvironmentAccess)
}

// countingStore counts environment reads, to show that a warm Open reads
// nothing.
type countingStore struct {
	keyhold.Store
	mu    sync.Mutex
	reads int
}

func (c *countingStore) GetEnvironment(ctx context.Context, id string) (*keyhold.Environment, error) {
	c.mu.Lock()
	c.reads++
	c.mu.Unlock()
	return c.Store.GetEnvironment(ctx, id)
}

func (c *countingStore) ListGenerations(ctx context.Context, id string) ([]*keyhold.RootKeyGeneration, error) {
	c.mu.Lock()
	c.reads++
	c.mu.Unlock()
	return c.Store.ListGenerations(ctx, id)
}

func (c *countingStore) GetSetting(ctx context.Context, name string) ([]byte, error) {
	c.mu.Lock()
	c.reads++
	c.mu.Unlock()
	return c.Store.GetSetting(ctx, name)
}

func (c *countingStore) count() int { c.mu.Lock(); defer c.mu.Unlock(); return c.reads }

func TestOpenWarmReadsNothingAndFollowsEvents(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	e := f.create(t, keyhold.EnvSandbox)
	cs := &countingStore{Store: f.store}
	f.svc.cfg.Store = cs
	if _, err := f.svc.Open(ctx, f.admin, e.ID, true); err != nil {
		t.Fatal(err)
	}
	before := cs.count()
	for range 100 {
		if _, err := f.svc.Open(ctx, f.admin, e.ID, true); err != nil {
			t.Fatal(err)
		}
	}
	if got := cs.count() - before; got != 0 {
		t.Fatalf("100 warm Opens made %d store reads, want 0", got)
	}

	// Another component (the lifecycle) adds generation 2 and publishes
	// EnvironmentChanged: the next Open seals under it.
	now := f.clock.Now()
	if err := f.store.CreateGeneration(ctx, &keyhold.RootKeyGeneration{EnvironmentID: e.ID, Generation: 2, Wrapped: []byte{1},
		WrappedBy: f.svc.cfg.PlatformKey, State: keyhold.GenerationActive, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	env, _ := f.svc.Open(ctx, f.admin, e.ID, true)
	if env.Active != 1 {
		t.Fatalf("before the event, active = %d, want the cached 1", env.Active)
	}
	f.bus.Publish(ctx, events.Event{Kind: events.EnvironmentChanged, TenantID: tenantA, Scope: e.ID})
	env, err := f.svc.Open(ctx, f.admin, e.ID, true)
	if err != nil || env.Active != 2 {
		t.Fatalf("after the event, active = %d, %v, want 2", env.Active, err)
	}
}

func TestOpenRefusesLocked(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	e := f.create(t, keyhold.EnvSandbox)
	if _, err := f.svc.Open(ctx, f.admin, e.ID, true); err != nil {
		t.Fatal(err)
	}
	f.svc.setLocked(e.ID, "access to key k1 was removed")
	_, err := f.svc.Open(ctx, f.admin, e.ID, false)
	wantCode(t, err, keyhold.EForbidden, DetailEnvironmentLocked)
	if msg := keyhold.ErrorMessage(err); !strings.Contains(msg, "access to key k1 was removed") || !strings.Contains(msg, "Environment disabled") {
		t.Fatalf("message %q does not say why", msg)
	}
	if n := f.svc.Keyring().Stats().Keys; n != 0 {
		t.Fatalf("keys in memory after lock = %d, want 0", n)
	}

	// Another process locked it: the store says Disabled, an event arrives.
	e2 := f.create(t, keyhold.EnvSandbox)
	if _, err := f.svc.Open(ctx, f.admin, e2.ID, true); err != nil {
		t.Fatal(err)
	}
	cur, _ := f.store.GetEnvironment(ctx, e2.ID)
	cur.RuntimeState, cur.LockReason, cur.LockedAt = keyhold.RuntimeDisabled, "key disabled", f.clock.Now()
	if err := f.store.UpdateEnvironment(ctx, cur); err != nil {
		t.Fatal(err)
	}
	f.bus.Publish(ctx, events.Event{Kind: events.EnvironmentChanged, Scope: e2.ID})
	_, err = f.svc.Open(ctx, f.admin, e2.ID, false)
	wantCode(t, err, keyhold.EForbidden, DetailEnvironmentLocked)
	// ... and unlocked it again.
	cur, _ = f.store.GetEnvironment(ctx, e2.ID)
	cur.RuntimeState, cur.LockReason, cur.LockedAt = keyhold.RuntimeEnabled, "", time.Time{}
	if err := f.store.UpdateEnvironment(ctx, cur); err != nil {
		t.Fatal(err)
	}
	f.bus.Publish(ctx, events.Event{Kind: events.EnvironmentChanged, Scope: e2.ID})
	if _, err := f.svc.Open(ctx, f.admin, e2.ID, false); err != nil {
		t.Fatalf("after unlock elsewhere: %v", err)
	}
}

func TestGetListDeleteVisibility(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	e := f.create(t, keyhold.EnvSandbox)
	user := f.principal(t, tenantA, "user")
	other := f.principal(t, tenantB, "admin", keyhold.RoleDynamics365Administrator)

	if _, err := f.svc.Get(ctx, user, e.ID); keyhold.ErrorDetail(err) != detailEnvNotFound {
		t.Fatalf("Get by a non-admin = %v, want not found", err)
	}
	_, err := f.svc.Get(ctx, other, e.ID)
	wantCode(t, err, keyhold.ENotFound, detailEnvNotFound)
	if want := "The environment '" + e.ID + "' could not be found in the tenant"; !strings.Contains(keyhold.ErrorMessage(err), want) {
		t.Fatalf("message %q, want it to contain %q", keyhold.ErrorMessage(err), want)
	}
	for _, c := range []*keyhold.Caller{user, other} {
		list, err := f.svc.List(ctx, c)
		if err != nil || len(list) != 0 {
			t.Fatalf("List by %s = %d environments, %v; want none", c.Principal.DisplayName, len(list), err)
		}
	}
	list, err := f.svc.List(ctx, f.admin)
	if err != nil || len(list) != 1 || list[0].ID != e.ID {
		t.Fatalf("List by admin = %v, %v", list, err)
	}
	wantCode(t, f.svc.Delete(ctx, user, e.ID), keyhold.ENotFound, detailEnvNotFound)
	if err := f.svc.Delete(ctx, f.admin, e.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.GetEnvironment(ctx, e.ID); !keyhold.IsNotFound(err) {
		t.Fatalf("after delete: %v", err)
	}
	_, err = f.svc.Open(ctx, f.admin, e.ID, false)
	wantCode(t, err, keyhold.ENotFound, detailEnvNotFound)
}

func TestDeleteLockedNeedsRetention(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	e := f.create(t, keyhold.EnvSandbox)
	cur, _ := f.store.GetEnvironment(ctx, e.ID)
	cur.RuntimeState, cur.LockReason, cur.LockedAt = keyhold.RuntimeDisabled, "key deleted", f.clock.Now()
	if err := f.store.UpdateEnvironment(ctx, cur); err != nil {
		t.Fatal(err)
	}
	wantCode(t, f.svc.Delete(ctx, f.admin, e.ID), keyhold.EConflict, DetailRetentionNotReached)
	if err := f.svc.SetTenantSettings(ctx, f.admin, TenantSettings{Retention: true}); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(6 * 24 * time.Hour)
	wantCode(t, f.svc.Delete(ctx, f.admin, e.ID), keyhold.EConflict, DetailRetentionNotReached)
	f.clock.Add(24 * time.Hour)
	if err := f.svc.Delete(ctx, f.admin, e.ID); err != nil {
		t.Fatalf("delete after the sandbox retention of 7 days: %v", err)
	}
}

func TestRolesNeedAdmin(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	e := f.create(t, keyhold.EnvSandbox)
	user := f.principal(t, tenantA, "user")
	envAdmin := f.principal(t, tenantA, "envadmin")
	stranger := f.principal(t, tenantA, "stranger")
	outsider := f.principal(t, tenantB, "outsider")
	if _, err := f.svc.GrantRole(ctx, f.admin, e.ID, user.Principal.ID, "user"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.GrantRole(ctx, f.admin, e.ID, envAdmin.Principal.ID, "Environment Admin"); err != nil {
		t.Fatal(err)
	}
	_, err := f.svc.GrantRole(ctx, user, e.ID, stranger.Principal.ID, RoleEnvironmentUser)
	wantCode(t, err, keyhold.EForbidden, DetailEnvironmentAccess)
	_, err = f.svc.GrantRole(ctx, stranger, e.ID, stranger.Principal.ID, RoleEnvironmentUser)
	wantCode(t, err, keyhold.ENotFound, detailEnvNotFound)
	_, err = f.svc.GrantRole(ctx, envAdmin, e.ID, outsider.Principal.ID, RoleEnvironmentUser)
	wantCode(t, err, keyhold.EInvalid, DetailInvalidEnvironment)
	_, err = f.svc.GrantRole(ctx, envAdmin, e.ID, stranger.Principal.ID, "Owner")
	wantCode(t, err, keyhold.EInvalid, DetailInvalidEnvironment)
	if _, err := f.svc.GrantRole(ctx, envAdmin, e.ID, stranger.Principal.ID, RoleEnvironmentUser); err != nil {
		t.Fatal(err)
	}
	holders, err := f.svc.ListRoles(ctx, envAdmin, e.ID)
	if err != nil || len(holders) != 3 {
		t.Fatalf("ListRoles = %d, %v; want 3", len(holders), err)
	}
	b, _ := json.Marshal(holders)
	if !strings.Contains(string(b), stranger.Principal.ID) {
		t.Fatalf("holders %s miss the new one", b)
	}
}
