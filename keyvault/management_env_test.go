package keyvault

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/arm"
	"github.com/keyhold/keyhold/events"
	"github.com/keyhold/keyhold/rbac"
	"github.com/keyhold/keyhold/sqlite"
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

// mgmtClock is a settable time source.
type mgmtClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *mgmtClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *mgmtClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type mgmtEnv struct {
	t     *testing.T
	store keyhold.Store
	clock *mgmtClock
	kv    *Service
	arm   *arm.Server
	bus   *events.Bus
	sub   *events.Subscription
	h     http.Handler
}

func newMgmtEnv(t *testing.T) *mgmtEnv {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "kv.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(st.CreateTenant(ctx, &keyhold.Tenant{ID: mgmtTenant, DisplayName: "Contoso", DefaultDomain: "contoso.keyhold", CreatedAt: now}))
	must(st.CreateTenant(ctx, &keyhold.Tenant{ID: mgmtOther, DisplayName: "Fabrikam", DefaultDomain: "fabrikam.keyhold", CreatedAt: now}))
	for _, p := range []*keyhold.Principal{
		{ID: mgmtOwner, TenantID: mgmtTenant, Type: keyhold.PrincipalUser, DisplayName: "Owner", UserPrincipalName: "owner@contoso.keyhold"},
		{ID: mgmtReader, TenantID: mgmtTenant, Type: keyhold.PrincipalUser, DisplayName: "Reader", UserPrincipalName: "reader@contoso.keyhold"},
		{ID: mgmtApp, TenantID: mgmtTenant, Type: keyhold.PrincipalServicePrincipal, DisplayName: "app", AppID: "7a5b6c7d-0000-4000-8000-000000000003"},
		{ID: mgmtKVC, TenantID: mgmtTenant, Type: keyhold.PrincipalUser, DisplayName: "KV contributor", UserPrincipalName: "kvc@contoso.keyhold"},
	} {
		p.CreatedAt = now
		must(st.CreatePrincipal(ctx, p))
	}
	for _, sub := range []string{mgmtSub, mgmtSub2} {
		must(st.CreateSubscription(ctx, &keyhold.Subscription{ID: sub, TenantID: mgmtTenant, DisplayName: "Contoso", State: "Enabled", CreatedAt: now}))
		must(st.PutProviderRegistration(ctx, &keyhold.ProviderRegistration{SubscriptionID: sub, Namespace: "Microsoft.KeyVault", State: keyhold.StateRegistered, UpdatedAt: now}))
		for _, g := range []string{mgmtGroup, mgmtGroup2} {
			must(st.PutResourceGroup(ctx, &keyhold.ResourceGroup{SubscriptionID: sub, Name: g, Location: "westeurope", ProvisioningState: "Succeeded"}))
		}
	}
	for i, a := range []struct{ role, principal, sub string }{
		{rbac.RoleOwner, mgmtOwner, mgmtSub}, {rbac.RoleOwner, mgmtOwner, mgmtSub2},
		{rbac.RoleReader, mgmtReader, mgmtSub}, {rbac.RoleKeyVaultContributor, mgmtKVC, mgmtSub},
	} {
		role, ok := rbac.RoleByName(a.role)
		if !ok {
			t.Fatalf("no role %s", a.role)
		}
		must(st.CreateRoleAssignment(ctx, &keyhold.RoleAssignment{
			Name: "8a5b6c7d-0000-4000-8000-00000000000" + string(rune('0'+i)), TenantID: mgmtTenant, Scope: "/subscriptions/" + a.sub,
			RoleDefinitionID: role.ID, PrincipalID: a.principal, PrincipalType: keyhold.PrincipalUser, CreatedAt: now, UpdatedAt: now}))
	}
	e := &mgmtEnv{t: t, store: st, clock: &mgmtClock{t: now}, bus: events.New(nil)}
	e.sub = e.bus.Subscribe(nil)
	t.Cleanup(e.sub.Close)
	e.kv = New(Config{Store: st, Events: e.bus, PublicURL: mgmtBaseURL, Now: e.clock.Now})
	e.arm = arm.New(arm.Config{Store: st, Events: e.bus, Now: e.clock.Now})
	e.arm.Register(e.kv.ResourceType())
	e.h = e.authenticate(e.arm.Handler())
	return e
}

// authenticate stands in for the server: "Bearer <object id>" is that
// principal.
func (e *mgmtEnv) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if id, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			p, err := e.store.GetPrincipal(ctx, id)
			if err != nil {
				http.Error(w, "unknown test principal", http.StatusUnauthorized)
				return
			}
			ctx = keyhold.WithCaller(ctx, &keyhold.Caller{Principal: p, TenantID: p.TenantID, Audience: mgmtAudARM})
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

type mgmtResp struct {
	Status int
	Body   []byte
}

func (r mgmtResp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body %q: %v", r.Body, err)
	}
	return m
}

// errCode returns error.code and error.message of an error response.
func (r mgmtResp) errCode(t *testing.T) (string, string) {
	t.Helper()
	e, _ := r.json(t)["error"].(map[string]any)
	code, _ := e["code"].(string)
	msg, _ := e["message"].(string)
	return code, msg
}

// do sends a request as principal; path gets ?api-version=mgmtAPI unless it
// has a query.
func (e *mgmtEnv) do(principal, method, path string, body any) mgmtResp {
	e.t.Helper()
	if !strings.Contains(path, "?") {
		path += "?api-version=" + mgmtAPI
	}
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req := httptest.NewRequest(method, path, rd)
	req.Header.Set("Authorization", "Bearer "+principal)
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return mgmtResp{Status: rec.Code, Body: rec.Body.Bytes()}
}

func (e *mgmtEnv) must(r mgmtResp, status int) mgmtResp {
	e.t.Helper()
	if r.Status != status {
		e.t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	return r
}

// drain returns the events published so far and not yet read.
func (e *mgmtEnv) drain() []events.Event {
	var out []events.Event
	for {
		select {
		case ev := <-e.sub.C():
			out = append(out, ev)
		default:
			return out
		}
	}
}

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
