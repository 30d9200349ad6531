package policy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/arm"
	"github.com/keyhold/keyhold/events"
	"github.com/keyhold/keyhold/httpapi"
	"github.com/keyhold/keyhold/identity"
	"github.com/keyhold/keyhold/internal/unitenv"
	"github.com/keyhold/keyhold/keyvault"
	"github.com/keyhold/keyhold/policy"
	"github.com/keyhold/keyhold/rbac"
	"github.com/keyhold/keyhold/seal"
)

// Unit harness: the resource manager's handler with the policy type
// registered, over a real SQLite store, called in-process with a Caller in
// the context as the server's authentication would put it there.

const (
	tenantA = "aaaaaaaa-0000-4000-8000-000000000000"
	tenantB = "bbbbbbbb-0000-4000-8000-000000000000"
	subA    = "00000000-0000-4000-8000-00000000000a"
	subA2   = "00000000-0000-4000-8000-0000000000a2" // tenant A's second subscription
	subB    = "00000000-0000-4000-8000-00000000000b"

	ownerID    = "aaaaaaaa-0000-4000-8000-000000000001" // Owner on subA and subA2
	writerID   = "aaaaaaaa-0000-4000-8000-000000000002" // Contributor on rg-pol only
	strangerID = "bbbbbbbb-0000-4000-8000-000000000001" // Owner on subB

	apiVersion = "2020-10-30"
	vaultName  = "kv-contoso"
	keyName    = "cmk"
	keyV1      = "0123456789abcdef0123456789abcdef"
	keyV2      = "fedcba9876543210fedcba9876543210"
)

var vaultID = "/subscriptions/" + subA + "/resourceGroups/rg-kv/providers/Microsoft.KeyVault/vaults/" + vaultName

func policyID(sub, name string) string {
	return "/subscriptions/" + sub + "/resourceGroups/rg-pol/providers/Microsoft.PowerPlatform/enterprisePolicies/" + name
}

// fakeLinks is a LinkChecker with a settable answer per policy id.
type fakeLinks struct {
	mu    sync.Mutex
	links map[string][]string
}

func (f *fakeLinks) LinkedEnvironments(_ context.Context, policyID string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.links[strings.ToLower(policyID)], nil
}

func (f *fakeLinks) set(policyID string, envs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.links[strings.ToLower(policyID)] = envs
}

type env struct {
	t     *testing.T
	store keyhold.Store
	arm   *arm.Server
	svc   *policy.Service
	ids   *identity.Service
	clock *unitenv.Clock
	bus   *events.Bus
	sub   *events.Subscription
	links *fakeLinks
	h     http.Handler
	n     int // systemId GUIDs handed out
}

type options struct {
	profile string
	delay   time.Duration
}

func newEnv(t *testing.T, o options) *env {
	t.Helper()
	ctx := context.Background()
	st := unitenv.SQLite(t, "p.db")
	e := &env{t: t, store: st, clock: unitenv.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)), links: &fakeLinks{links: map[string][]string{}}}
	now := e.clock.Now()
	seed := unitenv.Seeder{TB: t, Store: st, Now: now}
	must := seed.Must
	seed.Tenant(tenantA, "Contoso", "contoso.keyhold")
	seed.Tenant(tenantB, "Fabrikam", "fabrikam.keyhold")
	seed.Principals(
		unitenv.User(ownerID, tenantA, "Owner", "owner@contoso.keyhold"),
		unitenv.User(writerID, tenantA, "Writer", "writer@contoso.keyhold"),
		unitenv.User(strangerID, tenantB, "Stranger", "owner@fabrikam.keyhold"),
	)
	for _, s := range []struct{ id, tenant, name string }{{subA, tenantA, "Contoso"}, {subA2, tenantA, "Contoso 2"}, {subB, tenantB, "Fabrikam"}} {
		seed.Subscription(s.id, s.tenant, s.name)
		seed.ResourceGroups(s.id, "westus", "rg-pol", "rg-kv")
		seed.Register(s.id, policy.Namespace)
	}
	for i, a := range []struct{ tenant, scope, role, principal string }{
		{tenantA, "/subscriptions/" + subA, rbac.RoleOwner, ownerID},
		{tenantA, "/subscriptions/" + subA2, rbac.RoleOwner, ownerID},
		{tenantA, "/subscriptions/" + subA + "/resourceGroups/rg-pol", rbac.RoleContributor, writerID},
		{tenantB, "/subscriptions/" + subB, rbac.RoleOwner, strangerID},
	} {
		seed.Assign(fmt.Sprintf("0a000000-0000-4000-8000-%012d", i), a.tenant, a.scope, a.role, a.principal)
	}
	// The vault and its key, as the key vault stores them.
	yes := true
	props, _ := json.Marshal(keyvault.Properties{TenantID: tenantA, SKU: keyvault.SKU{Family: "A", Name: "standard"}, EnableSoftDelete: &yes, EnablePurgeProtection: &yes})
	must(st.PutResource(ctx, &keyhold.Resource{ID: vaultID, SubscriptionID: subA, ResourceGroup: "rg-kv", Type: keyvault.ResourceType, Name: vaultName, Location: "westus", Properties: props}))
	for i, v := range []string{keyV1, keyV2} {
		must(st.CreateKeyVersion(ctx, &keyhold.KeyVersion{VaultName: vaultName, Name: keyName, Version: v, Kty: "RSA", KeySize: 2048,
			KeyOps: []string{"wrapKey", "unwrapKey"}, PublicJWK: json.RawMessage(`{}`), Enabled: true, CreatedAt: now.Add(time.Duration(i) * time.Second), UpdatedAt: now}))
	}

	key, err := seal.NewKey(seal.GenerateMasterKey())
	if err != nil {
		t.Fatal(err)
	}
	e.ids, err = identity.New(ctx, st, key, identity.Config{PublicURL: "https://keyhold.test/", Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.bus = events.New(nil)
	e.sub = e.bus.Subscribe(func(ev events.Event) bool { return ev.Kind == events.PolicyChanged })
	t.Cleanup(e.sub.Close)
	e.arm = arm.New(arm.Config{Store: st, Now: e.clock.Now, RegistrationDelay: o.delay, Events: e.bus})
	e.svc = policy.New(policy.Config{
		Store: st, Identity: e.ids, Events: e.bus, Profile: o.profile, Features: e.arm, Links: e.links, Now: e.clock.Now,
		NewID: func() string { e.n++; return fmt.Sprintf("00000000-0000-4000-8000-%012d", e.n) },
	})
	e.arm.Register(e.svc.ResourceType())
	e.h = unitenv.Auth{Store: st, PrincipalOf: unitenv.Header("X-Test-Principal")}.Handler(e.arm.Handler())
	return e
}

type response struct{ unitenv.Response }

func (r response) json(t *testing.T) map[string]any { t.Helper(); return r.JSON(t) }

// errorCode returns the Azure error code of the response, or "".
func (r response) errorCode() string {
	var b httpapi.AzureError
	json.Unmarshal(r.Body, &b)
	return b.Error.Code
}

func (r response) errorMessage() string {
	var b httpapi.AzureError
	json.Unmarshal(r.Body, &b)
	return b.Error.Message
}

// do sends a request as principal; body is JSON-encoded unless it is a
// string or []byte, which is sent as is.
func (e *env) do(principal, method, path string, body any) response {
	e.t.Helper()
	rd := unitenv.Body(e.t, body)
	if !strings.Contains(path, "api-version=") {
		if strings.Contains(path, "?") {
			path += "&api-version=" + apiVersion
		} else {
			path += "?api-version=" + apiVersion
		}
	}
	req := httptest.NewRequest(method, path, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-Test-Principal", principal)
	return response{unitenv.Serve(e.h, req)}
}

// doIfMatch PUTs body as the owner with an If-Match header.
func (e *env) doIfMatch(id, etag string, body any) response {
	e.t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		e.t.Fatal(err)
	}
	req := httptest.NewRequest("PUT", id+"?api-version="+apiVersion, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("If-Match", etag)
	req.Header.Set("X-Test-Principal", ownerID)
	return response{unitenv.Serve(e.h, req)}
}

// encryptionBody is the seed's template resource as a PUT body.
func encryptionBody(version any) map[string]any {
	key := map[string]any{"name": keyName}
	if version != nil {
		key["version"] = version
	}
	return map[string]any{
		"location": "unitedstates",
		"kind":     "Encryption",
		"identity": map[string]any{"type": "SystemAssigned"},
		"properties": map[string]any{
			"encryption": map[string]any{
				"state":    "Enabled",
				"keyVault": map[string]any{"id": vaultID, "key": key},
			},
			"networkInjection": nil,
		},
	}
}

// put creates or replaces a policy as the owner and fails the test unless
// the status is 200 or 201.
func (e *env) put(id string, body any) map[string]any {
	e.t.Helper()
	r := e.do(ownerID, "PUT", id, body)
	if r.Status != http.StatusOK && r.Status != http.StatusCreated {
		e.t.Fatalf("PUT %s: %d %s", id, r.Status, r.Body)
	}
	return r.json(e.t)
}

// events drains the PolicyChanged events published so far.
func (e *env) events() []events.Event { return unitenv.Drain(e.sub) }

// get reads a nested field of a decoded JSON object by a dotted path.
func get(m map[string]any, path string) any { return unitenv.Field(m, path) }

func str(m map[string]any, path string) string {
	s, _ := get(m, path).(string)
	return s
}
