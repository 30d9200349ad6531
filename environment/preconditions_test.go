package environment

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/keyvault"
	"github.com/keyhold/keyhold/policy"
)

// fakeChecker answers a policy check with fixed checks.
type fakeChecker struct{ checks []keyvault.AccessCheck }

func (c fakeChecker) Check(context.Context, string) (*keyvault.AccessReport, error) {
	return &keyvault.AccessReport{Checks: c.checks}, nil
}

func TestLinkPreconditions(t *testing.T) {
	cases := []struct {
		name   string
		setup  func(t *testing.T, f *fixture, e *keyhold.Environment, p *testPolicy) (*keyhold.Caller, string)
		code   string
		detail string
	}{
		{"not a platform admin", func(t *testing.T, f *fixture, e *keyhold.Environment, p *testPolicy) (*keyhold.Caller, string) {
			return f.principal(t, tenantA, "maker"), p.SystemID
		}, keyhold.ENotFound, DetailEnvironmentNotFound},
		{"admin of another tenant", func(t *testing.T, f *fixture, e *keyhold.Environment, p *testPolicy) (*keyhold.Caller, string) {
			return f.principal(t, tenantB, "other", keyhold.RoleGlobalAdministrator), p.SystemID
		}, keyhold.ENotFound, DetailEnvironmentNotFound},
		{"unknown systemId", func(t *testing.T, f *fixture, e *keyhold.Environment, p *testPolicy) (*keyhold.Caller, string) {
			return f.admin, "/regions/europe/providers/Microsoft.PowerPlatform/enterprisePolicies/" + newGUID()
		}, keyhold.ENotFound, DetailPolicyNotFound},
		{"empty systemId", func(t *testing.T, f *fixture, e *keyhold.Environment, p *testPolicy) (*keyhold.Caller, string) {
			return f.admin, " "
		}, keyhold.EInvalid, DetailBadSystemID},
		{"no Reader on the policy", func(t *testing.T, f *fixture, e *keyhold.Environment, p *testPolicy) (*keyhold.Caller, string) {
			return f.principal(t, tenantA, "admin2", keyhold.RoleDynamics365Administrator), p.SystemID
		}, keyhold.EForbidden, DetailPolicyReadRequired},
		{"other region", func(t *testing.T, f *fixture, e *keyhold.Environment, p *testPolicy) (*keyhold.Caller, string) {
			q := f.addPolicy(t, "ep-us", "unitedstates", policy.KindEncryption, policy.HealthHealthy, false)
			f.grantPolicyReader(t, f.admin, q.ID)
			return f.admin, q.SystemID
		}, keyhold.EInvalid, DetailRegionMismatch},
		{"kind Identity", func(t *testing.T, f *fixture, e *keyhold.Environment, p *testPolicy) (*keyhold.Caller, string) {
			q := f.addPolicy(t, "ep-id", "europe", policy.KindIdentity, policy.HealthHealthy, false)
			f.grantPolicyReader(t, f.admin, q.ID)
			return f.admin, q.SystemID
		}, keyhold.EInvalid, DetailPolicyKind},
		{"unhealthy policy", func(t *testing.T, f *fixture, e *keyhold.Environment, p *testPolicy) (*keyhold.Caller, string) {
			q := f.addPolicy(t, "ep-sick", "europe", policy.KindEncryption, policy.HealthUnhealthy, false)
			f.grantPolicyReader(t, f.admin, q.ID)
			return f.admin, q.SystemID
		}, keyhold.EInvalid, DetailPolicyUnhealthy},
		{"soft delete off", func(t *testing.T, f *fixture, e *keyhold.Environment, p *testPolicy) (*keyhold.Caller, string) {
			f.svc.cfg.Lifecycle.Checker = fakeChecker{[]keyvault.AccessCheck{{Name: keyvault.CheckVaultExists, OK: true},
				{Name: keyvault.CheckSoftDelete, Warning: true, Message: "soft delete is off"}}}
			return f.admin, p.SystemID
		}, keyhold.EInvalid, "KeyVaultSoftDeleteDisabled"},
		{"purge protection off", func(t *testing.T, f *fixture, e *keyhold.Environment, p *testPolicy) (*keyhold.Caller, string) {
			f.svc.cfg.Lifecycle.Checker = fakeChecker{[]keyvault.AccessCheck{{Name: keyvault.CheckPurgeProtection, Warning: true, Message: "purge protection is off"}}}
			return f.admin, p.SystemID
		}, keyhold.EInvalid, "KeyVaultPurgeProtectionDisabled"},
		{"RSA 1024", func(t *testing.T, f *fixture, e *keyhold.Environment, p *testPolicy) (*keyhold.Caller, string) {
			f.svc.cfg.Lifecycle.Checker = fakeChecker{[]keyvault.AccessCheck{{Name: keyvault.CheckKeyType, Failure: keyvault.FailureDefinite, Message: "key is RSA 1024"}}}
			return f.admin, p.SystemID
		}, keyhold.EInvalid, "KeyTypeNotSupported"},
		{"key expired", func(t *testing.T, f *fixture, e *keyhold.Environment, p *testPolicy) (*keyhold.Caller, string) {
			f.svc.cfg.Lifecycle.Checker = fakeChecker{[]keyvault.AccessCheck{{Name: keyvault.CheckKeyValidity, Failure: keyvault.FailureDefinite, Message: "expired"}}}
			return f.admin, p.SystemID
		}, keyhold.EInvalid, "KeyExpired"},
		{"no unwrapKey", func(t *testing.T, f *fixture, e *keyhold.Environment, p *testPolicy) (*keyhold.Caller, string) {
			f.svc.cfg.Lifecycle.Checker = fakeChecker{[]keyvault.AccessCheck{{Name: keyvault.CheckKeyOperations, Failure: keyvault.FailureDefinite, Message: "no unwrapKey"}}}
			return f.admin, p.SystemID
		}, keyhold.EInvalid, "KeyOperationsNotPermitted"},
		{"vault unreachable", func(t *testing.T, f *fixture, e *keyhold.Environment, p *testPolicy) (*keyhold.Caller, string) {
			f.svc.cfg.Lifecycle.Checker = fakeChecker{[]keyvault.AccessCheck{{Name: keyvault.CheckNetwork, Failure: keyvault.FailureUnreachable, Message: "down"}}}
			return f.admin, p.SystemID
		}, keyhold.EUnavailable, "KeyVaultNetworkAccessDenied"},
		{"busy", func(t *testing.T, f *fixture, e *keyhold.Environment, p *testPolicy) (*keyhold.Caller, string) {
			op, err := f.svc.newOperation(e, ActionRotate, "x", opParams{})
			if err != nil {
				t.Fatal(err)
			}
			if err := f.store.CreateOperation(context.Background(), op); err != nil {
				t.Fatal(err)
			}
			return f.admin, p.SystemID
		}, keyhold.EConflict, DetailOperationInProgress},
		{"locked", func(t *testing.T, f *fixture, e *keyhold.Environment, p *testPolicy) (*keyhold.Caller, string) {
			f.svc.setLocked(e.ID, "key disabled")
			return f.admin, p.SystemID
		}, keyhold.EConflict, DetailEnvironmentLocked},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, e, p := linkable(t)
			c, sys := tc.setup(t, f, e, &p)
			_, err := f.svc.Link(context.Background(), c, e.ID, sys)
			wantCode(t, err, tc.code, tc.detail)
			if msg := keyhold.ErrorMessage(err); msg == "" || msg == "internal error" {
				t.Fatalf("message = %q, want a clear one", msg)
			}
			if env := f.env(t, e.ID); env.PolicyID != "" || env.Version != e.Version {
				t.Fatalf("a refused link changed the environment: %+v", env)
			}
		})
	}
}

func TestEnvironmentTypes(t *testing.T) {
	cases := []struct {
		profile, typ string
		managed      bool
		detail       string // "" allowed
	}{
		{ProfileDefault, keyhold.EnvProduction, true, ""},
		{ProfileDefault, keyhold.EnvSandbox, true, ""},
		{ProfileDefault, keyhold.EnvDeveloper, true, ""},
		{ProfileDefault, keyhold.EnvProduction, false, DetailManagedRequired},
		{ProfileDefault, keyhold.EnvTrial, true, DetailEnvironmentTypeNotAllow},
		{ProfileDefault, keyhold.EnvTeams, true, DetailEnvironmentTypeNotAllow},
		{ProfilePreview, keyhold.EnvSandbox, false, ""},
		{ProfilePreview, keyhold.EnvProduction, true, DetailEnvironmentTypeNotAllow},
	}
	for _, tc := range cases {
		err := checkEnvType(tc.profile, &keyhold.Environment{ID: "e", Type: tc.typ, Managed: tc.managed})
		if got := keyhold.ErrorDetail(err); got != tc.detail {
			t.Errorf("%s %s managed=%v: detail %q (%v), want %q", tc.profile, tc.typ, tc.managed, got, err, tc.detail)
		}
	}
}

// TestLinkOverHTTP calls the BAP routes as Microsoft's scripts do.
func TestLinkOverHTTP(t *testing.T) {
	f, e, p := linkable(t)
	h := f.svc.LifecycleHandler()
	do := func(method, path, body string, c *keyhold.Caller) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "https://bap.keyhold.test"+path, strings.NewReader(body))
		r = r.WithContext(keyhold.WithCaller(r.Context(), c))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	base := BAPPrefix + "/environments/" + e.ID + "/enterprisePolicies/Encryption/"
	w := do("POST", base+"link?&api-version=2019-10-01", `{"SystemId": "`+p.SystemID+`"}`, f.admin)
	if w.Code != http.StatusAccepted {
		t.Fatalf("link = %d %s, want 202", w.Code, w.Body)
	}
	loc := w.Header().Get("operation-location")
	if !strings.HasPrefix(loc, "https://bap.keyhold.test"+BAPPrefix+"/lifecycleOperations/") || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("headers = %v", w.Header())
	}
	f.runAll(t)
	path := strings.TrimPrefix(loc, "https://bap.keyhold.test")
	w = do("GET", path, "", f.admin)
	var v OperationView
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil || w.Code != 200 {
		t.Fatalf("poll = %d %s", w.Code, w.Body)
	}
	if v.State.ID != keyhold.OpSucceeded || v.TypeDisplayName != TypeUpdateCMK || len(v.Stages) != 4 || v.Links.Environment.Path != BAPPrefix+"/environments/"+e.ID {
		t.Fatalf("operation = %+v", v)
	}
	// Errors come in the Azure shape with their status.
	for _, tc := range []struct {
		method, path, body string
		c                  *keyhold.Caller
		status             int
		code               string
	}{
		{"POST", base + "link?api-version=2019-10-01", `{"systemId": 3}`, f.admin, 400, "InvalidRequestContent"},
		{"POST", base + "link?api-version=2019-10-01", `{}`, f.admin, 400, DetailBadSystemID},
		{"POST", BAPPrefix + "/environments/" + e.ID + "/enterprisePolicies/Vnet/link", `{}`, f.admin, 400, "UnsupportedEnterprisePolicyType"},
		{"POST", base + "link", `{"SystemId": "` + p.SystemID + `"}`, f.principal(t, tenantA, "nobody"), 404, DetailEnvironmentNotFound},
		{"GET", path, "", f.principal(t, tenantB, "b", keyhold.RoleGlobalAdministrator), 404, "OperationNotFound"},
		{"POST", BAPPrefix + "/environments/" + newGUID() + "/enterprisePolicies/Encryption/unlink", `{}`, f.admin, 404, DetailEnvironmentNotFound},
	} {
		w := do(tc.method, tc.path, tc.body, tc.c)
		var body struct{ Error struct{ Code string } }
		_ = json.Unmarshal(w.Body.Bytes(), &body)
		if w.Code != tc.status || body.Error.Code != tc.code {
			t.Errorf("%s %s %s = %d %s, want %d %s", tc.method, tc.path, tc.body, w.Code, body.Error.Code, tc.status, tc.code)
		}
	}
	w = do("POST", base+"unlink?api-version=2019-10-01", `{"SystemId": "`+p.SystemID+`"}`, f.admin)
	if w.Code != http.StatusAccepted {
		t.Fatalf("unlink = %d %s", w.Code, w.Body)
	}
	f.runAll(t)
	if env := f.env(t, e.ID); env.KeyManagedBy != keyhold.KeyManagedByMicrosoft {
		t.Fatalf("after unlink keyManagedBy = %s", env.KeyManagedBy)
	}
}

// TestBYOKMigration: an environment under a tenant-uploaded key moves to a
// policy by re-wrap, shows CustomerViaMicrosoft and refuses a revert for the
// no-revert period.
func TestBYOKMigration(t *testing.T) {
	f, e, p := linkable(t)
	ctx := context.Background()
	want := f.seedRows(t, e.ID, 100, 64)
	byok := f.mem.AddKey(keyhold.WrapRef{Kind: keyhold.WrapBYOK, VaultID: "$system", KeyName: "byok-" + tenantA})
	byok.KeyVersion = ""
	if _, err := f.svc.ApplyBYOK(ctx, f.admin, e.ID, p.Key); err == nil {
		t.Fatal("ApplyBYOK took a customer key")
	}
	env, err := f.svc.ApplyBYOK(ctx, f.admin, e.ID, byok)
	if err != nil {
		t.Fatal(err)
	}
	if env.KeyManagedBy != keyhold.KeyManagedByCustomer {
		t.Fatalf("under BYOK keyManagedBy = %s", env.KeyManagedBy)
	}
	op, err := f.svc.Link(ctx, f.admin, e.ID, p.SystemID)
	if err != nil {
		t.Fatal(err)
	}
	f.runAll(t)
	if got := f.op(t, op.ID); got.State != keyhold.OpSucceeded {
		t.Fatalf("migration = %s %q", got.State, got.Error)
	}
	env = f.env(t, e.ID)
	if env.KeyManagedBy != keyhold.KeyManagedByCustomerViaMicrosoft || !env.NoRevertUntil.Equal(f.clock.Now().Add(DefaultNoRevertPeriod)) {
		t.Fatalf("after migration = %s until %s", env.KeyManagedBy, env.NoRevertUntil)
	}
	gens, _ := f.store.ListGenerations(ctx, e.ID)
	if len(gens) != 1 || gens[0].WrappedBy.Kind != keyhold.WrapCustomer {
		t.Fatalf("generations = %+v, want the one generation re-wrapped under the customer key", gens)
	}
	f.mem.Delete(byok.VaultID, byok.KeyName) // the BYOK key is no longer needed
	f.checkRows(t, e.ID, want)
	_, err = f.svc.Unlink(ctx, f.admin, e.ID, "")
	wantCode(t, err, keyhold.EConflict, DetailNoRevertWindow)
	f.clock.Add(DefaultNoRevertPeriod + time.Hour)
	if _, err := f.svc.Unlink(ctx, f.admin, e.ID, ""); err != nil {
		t.Fatalf("unlink after the window: %v", err)
	}
}

// TestRotation: a policy without a pinned version follows a new key
// version by re-wrap; nothing is queued when nothing is new.
func TestRotation(t *testing.T) {
	f, e, p := linkable(t)
	ctx := context.Background()
	want := f.seedRows(t, e.ID, 50, 32)
	if _, err := f.svc.Link(ctx, f.admin, e.ID, p.SystemID); err != nil {
		t.Fatal(err)
	}
	f.runAll(t)
	if n, err := f.svc.CheckRotation(ctx, ""); err != nil || n != 0 {
		t.Fatalf("rotation check without a new version queued %d (%v), want 0", n, err)
	}
	newer := f.mem.AddKey(keyhold.WrapRef{Kind: keyhold.WrapCustomer, VaultID: p.Key.VaultID, KeyName: p.Key.KeyName})
	if n, err := f.svc.CheckRotation(ctx, p.ID); err != nil || n != 1 {
		t.Fatalf("rotation check after a new version queued %d (%v), want 1", n, err)
	}
	f.runAll(t)
	gens, _ := f.store.ListGenerations(ctx, e.ID)
	if g := gens[len(gens)-1]; g.WrappedBy.KeyVersion != newer.KeyVersion {
		t.Fatalf("live generation wrapped by version %s, want %s", g.WrappedBy.KeyVersion, newer.KeyVersion)
	}
	f.checkRows(t, e.ID, want)
	if n, _ := f.svc.CheckRotation(ctx, ""); n != 0 {
		t.Fatalf("a second check queued %d", n)
	}
}
