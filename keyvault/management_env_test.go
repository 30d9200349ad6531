package keyvault

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/arm"
	"github.com/keyhold/keyhold/events"
	"github.com/keyhold/keyhold/internal/unitenv"
	"github.com/keyhold/keyhold/rbac"
)

// The management harness: the resource manager with the vault type
// registered, over a real SQLite store, behind a stand-in for the server's
// authentication that turns "Bearer <object id>" into that principal.

const (
	mgmtTenant  = "4a5b6c7d-0000-4000-8000-00000000000a"
	mgmtOther   = "4a5b6c7d-0000-4000-8000-00000000000b" // another tenant
	mgmtSub     = "5a5b6c7d-0000-4000-8000-00000000000a"
	mgmtSub2    = "5a5b6c7d-0000-4000-8000-00000000000c" // the same tenant's second subscription
	mgmtOwner   = "6a5b6c7d-0000-4000-8000-000000000001"
	mgmtReader  = "6a5b6c7d-0000-4000-8000-000000000002"
	mgmtApp     = "6a5b6c7d-0000-4000-8000-000000000003"
	mgmtKVC     = "6a5b6c7d-0000-4000-8000-000000000004" // Key Vault Contributor on the subscription
	mgmtGroup   = "rg-keys"
	mgmtGroup2  = "rg-other"
	mgmtAPI     = "2024-11-01"
	mgmtAudARM  = "https://management.keyhold.internal"
	mgmtBaseURL = "https://keyhold.test:8443/"
)

type mgmtEnv struct {
	t     *testing.T
	store keyhold.Store
	clock *unitenv.Clock
	kv    *Service
	arm   *arm.Server
	bus   *events.Bus
	sub   *events.Subscription
	h     http.Handler
}

func newMgmtEnv(t *testing.T) *mgmtEnv {
	t.Helper()
	st := unitenv.SQLite(t, "kv.db")
	now := time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)
	seed := unitenv.Seeder{TB: t, Store: st, Now: now}
	seed.Tenant(mgmtTenant, "Contoso", "contoso.keyhold")
	seed.Tenant(mgmtOther, "Fabrikam", "fabrikam.keyhold")
	seed.Principals(
		unitenv.User(mgmtOwner, mgmtTenant, "Owner", "owner@contoso.keyhold"),
		unitenv.User(mgmtReader, mgmtTenant, "Reader", "reader@contoso.keyhold"),
		&keyhold.Principal{ID: mgmtApp, TenantID: mgmtTenant, Type: keyhold.PrincipalServicePrincipal, DisplayName: "app", AppID: "7a5b6c7d-0000-4000-8000-000000000003"},
		unitenv.User(mgmtKVC, mgmtTenant, "KV contributor", "kvc@contoso.keyhold"),
	)
	for _, sub := range []string{mgmtSub, mgmtSub2} {
		seed.Subscription(sub, mgmtTenant, "Contoso")
		seed.Register(sub, "Microsoft.KeyVault")
		seed.ResourceGroups(sub, "westeurope", mgmtGroup, mgmtGroup2)
	}
	for i, a := range []struct{ role, principal, sub string }{
		{rbac.RoleOwner, mgmtOwner, mgmtSub}, {rbac.RoleOwner, mgmtOwner, mgmtSub2},
		{rbac.RoleReader, mgmtReader, mgmtSub}, {rbac.RoleKeyVaultContributor, mgmtKVC, mgmtSub},
	} {
		seed.Assign("8a5b6c7d-0000-4000-8000-00000000000"+string(rune('0'+i)), mgmtTenant, "/subscriptions/"+a.sub, a.role, a.principal)
	}
	e := &mgmtEnv{t: t, store: st, clock: unitenv.NewClock(now), bus: events.New(nil)}
	e.sub = e.bus.Subscribe(nil)
	t.Cleanup(e.sub.Close)
	e.kv = New(Config{Store: st, Events: e.bus, PublicURL: mgmtBaseURL, Now: e.clock.Now})
	e.arm = arm.New(arm.Config{Store: st, Events: e.bus, Now: e.clock.Now})
	e.arm.Register(e.kv.ResourceType())
	// The stand-in for the server: "Bearer <object id>" is that principal.
	e.h = unitenv.Auth{Store: st, PrincipalOf: unitenv.Bearer, Audience: mgmtAudARM}.Handler(e.arm.Handler())
	return e
}

type mgmtResp struct{ unitenv.Response }

func (r mgmtResp) json(t *testing.T) map[string]any { t.Helper(); return r.JSON(t) }

// errCode returns error.code and error.message of an error response.
func (r mgmtResp) errCode(t *testing.T) (string, string) { t.Helper(); return r.AzureError(t) }

// do sends a request as principal; path gets ?api-version=mgmtAPI unless it
// has a query.
func (e *mgmtEnv) do(principal, method, path string, body any) mgmtResp {
	e.t.Helper()
	if !strings.Contains(path, "?") {
		path += "?api-version=" + mgmtAPI
	}
	req := httptest.NewRequest(method, path, unitenv.Body(e.t, body))
	req.Header.Set("Authorization", "Bearer "+principal)
	return mgmtResp{unitenv.Serve(e.h, req)}
}

func (e *mgmtEnv) must(r mgmtResp, status int) mgmtResp {
	e.t.Helper()
	if r.Status != status {
		e.t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	return r
}

// drain returns the events published so far and not yet read.
func (e *mgmtEnv) drain() []events.Event { return unitenv.Drain(e.sub) }

func mgmtVaultPath(sub, group, name string) string {
	return "/subscriptions/" + sub + "/resourceGroups/" + group + "/providers/Microsoft.KeyVault/vaults/" + name
}

// vaultJSON is a minimal valid vault body, changed by mod.
func vaultJSON(mod func(p map[string]any)) map[string]any {
	p := map[string]any{"tenantId": mgmtTenant, "sku": map[string]any{"family": "A", "name": "standard"}, "accessPolicies": []any{}}
	if mod != nil {
		mod(p)
	}
	return map[string]any{"location": "westeurope", "properties": p}
}
