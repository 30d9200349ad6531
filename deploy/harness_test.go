package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/arm"
	"github.com/keyhold/keyhold/rbac"
	"github.com/keyhold/keyhold/sqlite"
)

const (
	hTenant = "aaaaaaaa-0000-0000-0000-000000000000"
	hSub    = "00000000-0000-0000-0000-00000000000a"
	hOwner  = "aaaaaaaa-0000-0000-0000-000000000001"
	hReader = "aaaaaaaa-0000-0000-0000-000000000002"
	hGroup  = "rg1"
	hAPI    = "2021-04-01"
	slowAPI = "2024-01-01"
)

// gadgets is a resource type for tests: Keyhold.Test/gadgets. A PUT of a
// gadget whose properties say "slow" waits until release is closed or the
// request ends; one that says "fail" is refused with a 400.
type gadgets struct {
	puts    *atomic.Int64
	entered chan string // receives the name of each slow gadget as it starts
	release chan struct{}
}

func (gadgets) Type() string          { return "Keyhold.Test/gadgets" }
func (gadgets) APIVersions() []string { return []string{slowAPI} }

func (gadgets) Put(_ context.Context, req *arm.PutRequest) (*keyhold.Resource, int, error) {
	return req.Resource, 0, nil
}

// Routes serves a gadget's PUT outside the framework's transaction, so that
// a slow gadget does not hold the store's write lock while it waits.
func (g gadgets) Routes() []arm.Route {
	return []arm.Route{{
		Method: http.MethodPut, Pattern: "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Keyhold.Test/gadgets/{name}",
		Action: "Keyhold.Test/gadgets/write", Handle: g.put,
	}}
}

func (g gadgets) put(ctx context.Context, rr *arm.RouteRequest) (any, int, error) {
	g.puts.Add(1)
	var body struct {
		Location   string         `json:"location"`
		Properties map[string]any `json:"properties"`
	}
	if err := json.NewDecoder(rr.HTTP.Body).Decode(&body); err != nil {
		return nil, 0, keyhold.Errorc(keyhold.EInvalid, "InvalidRequestContent", "bad body")
	}
	name := rr.Params["name"]
	if body.Properties["fail"] == true {
		return nil, 0, keyhold.Errorc(keyhold.EInvalid, "GadgetRefused", "The gadget '%s' refuses to be made.", name)
	}
	if body.Properties["slow"] == true && g.release != nil {
		select {
		case g.entered <- name:
		default:
		}
		select {
		case <-g.release:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
	if body.Properties == nil {
		body.Properties = map[string]any{}
	}
	body.Properties["serial"] = "SN-" + name
	props, _ := json.Marshal(body.Properties)
	r := &keyhold.Resource{ID: gadgetID(name), SubscriptionID: hSub, ResourceGroup: hGroup, Type: "Keyhold.Test/gadgets", Name: name,
		Location: body.Location, Properties: props}
	if err := rr.Store.PutResource(ctx, r); err != nil {
		return nil, 0, err
	}
	return arm.DefaultRender(r), http.StatusCreated, nil
}

func (gadgets) Patch(_ context.Context, req *arm.PutRequest) (*keyhold.Resource, error) {
	return req.Existing, nil
}
func (gadgets) Delete(context.Context, *keyhold.Resource) error { return nil }
func (gadgets) Render(r *keyhold.Resource) any                  { return arm.DefaultRender(r) }

// harness is a resource manager with deployments on a SQLite file, with
// the authentication the server would do replaced by a header naming the
// caller.
type harness struct {
	t       *testing.T
	store   keyhold.Store
	arm     *arm.Server
	svc     *Service
	gadgets gadgets
	stopRun context.CancelFunc
	runDone chan struct{}
	stopped bool
}

// seed fills a new store: a tenant, an owner and a reader of the
// subscription, a group, and the test provider registered.
func seed(t *testing.T, store keyhold.Store) {
	ctx := context.Background()
	now := time.Now().UTC()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(store.CreateTenant(ctx, &keyhold.Tenant{ID: hTenant, DisplayName: "Contoso", DefaultDomain: "contoso.keyhold", CreatedAt: now}))
	for _, p := range []*keyhold.Principal{
		{ID: hOwner, TenantID: hTenant, Type: keyhold.PrincipalUser, DisplayName: "Owner", UserPrincipalName: "owner@contoso.keyhold", CreatedAt: now},
		{ID: hReader, TenantID: hTenant, Type: keyhold.PrincipalUser, DisplayName: "Reader", UserPrincipalName: "reader@contoso.keyhold", CreatedAt: now},
	} {
		must(store.CreatePrincipal(ctx, p))
	}
	must(store.CreateSubscription(ctx, &keyhold.Subscription{ID: hSub, TenantID: hTenant, DisplayName: "Contoso", State: "Enabled", CreatedAt: now}))
	must(store.PutResourceGroup(ctx, &keyhold.ResourceGroup{SubscriptionID: hSub, Name: hGroup, Location: "westeurope", ProvisioningState: "Succeeded"}))
	for i, a := range []struct{ role, principal string }{{rbac.RoleOwner, hOwner}, {rbac.RoleReader, hReader}} {
		role, _ := rbac.RoleByName(a.role)
		must(store.CreateRoleAssignment(ctx, &keyhold.RoleAssignment{Name: "0a000000-0000-0000-0000-00000000000" + string(rune('1'+i)), TenantID: hTenant,
			Scope: "/subscriptions/" + hSub, RoleDefinitionID: role.ID, PrincipalID: a.principal, PrincipalType: keyhold.PrincipalUser, CreatedAt: now, UpdatedAt: now}))
	}
	must(store.PutProviderRegistration(ctx, &keyhold.ProviderRegistration{SubscriptionID: hSub, Namespace: "Keyhold.Test", State: keyhold.StateRegistered, UpdatedAt: now}))
}

// startHarness opens the store at path (seeding it when new) and starts a
// resource manager and a deployment service on it, with Run going.
func startHarness(t *testing.T, path string, g gadgets) *harness {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.GetTenant(ctx, hTenant); keyhold.IsNotFound(err) {
		seed(t, store)
	}
	if g.puts == nil {
		g.puts = &atomic.Int64{}
	}
	h := &harness{t: t, store: store, gadgets: g, runDone: make(chan struct{})}
	h.arm = arm.New(arm.Config{Store: store})
	h.svc = New(Config{Store: store, ARM: h.arm.Handler(), LeaseTTL: 300 * time.Millisecond})
	h.arm.Register(h.svc.ResourceType())
	h.arm.Register(g)
	runCtx, stop := context.WithCancel(ctx)
	h.stopRun = stop
	go func() {
		defer close(h.runDone)
		h.svc.Run(runCtx)
	}()
	t.Cleanup(h.stop)
	return h
}

func newHarness(t *testing.T) *harness {
	return startHarness(t, filepath.Join(t.TempDir(), "k.db"), gadgets{})
}

// stop ends Run, as a server's shutdown does, and closes the store.
func (h *harness) stop() {
	if h.stopped {
		return
	}
	h.stopped = true
	h.stopRun()
	<-h.runDone
	h.store.Close()
}

// do sends a request as principal and decodes a JSON answer.
func (h *harness) do(principal, method, path string, body any) (int, map[string]any, http.Header) {
	h.t.Helper()
	var rd *bytes.Reader
	switch b := body.(type) {
	case nil:
		rd = bytes.NewReader(nil)
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	if !strings.Contains(path, "api-version=") {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		path += sep + "api-version=" + hAPI
	}
	req := httptest.NewRequest(method, path, rd)
	p, err := h.store.GetPrincipal(req.Context(), principal)
	if err != nil {
		h.t.Fatal(err)
	}
	req = req.WithContext(keyhold.WithCaller(req.Context(), &keyhold.Caller{Principal: p, TenantID: p.TenantID}))
	w := httptest.NewRecorder()
	h.arm.Handler().ServeHTTP(w, req)
	var out map[string]any
	if w.Body.Len() > 0 {
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			h.t.Fatalf("%s %s: %d %s", method, path, w.Code, w.Body)
		}
	}
	return w.Code, out, w.Header()
}

func depPath(name string) string {
	return "/subscriptions/" + hSub + "/resourcegroups/" + hGroup + "/providers/Microsoft.Resources/deployments/" + name
}

func gadgetID(name string) string {
	return "/subscriptions/" + hSub + "/resourceGroups/" + hGroup + "/providers/Keyhold.Test/gadgets/" + name
}

// deployBody wraps a template and parameter values in a Deployment.
func deployBody(template string, params map[string]any) map[string]any {
	p := map[string]any{}
	for k, v := range params {
		p[k] = map[string]any{"value": v}
	}
	return map[string]any{"properties": map[string]any{"template": json.RawMessage(template), "parameters": p, "mode": "Incremental"}}
}

// waitState polls the deployment until its provisioningState is want.
func (h *harness) waitState(name, want string) map[string]any {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body, _ := h.do(hOwner, "GET", depPath(name), nil)
		if code == http.StatusOK {
			props := body["properties"].(map[string]any)
			if props["provisioningState"] == want {
				return body
			}
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("deployment %s did not become %s: %d %v", name, want, code, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// gadgetTemplate deploys gadgets a (fast), b (slow unless told, after a)
// and c (after b), with c's color taken from reference('b').
const gadgetTemplate = `{
  "parameters": {"slow": {"type": "bool", "defaultValue": true}, "failC": {"type": "bool", "defaultValue": false}},
  "variables": {"t": "Keyhold.Test/gadgets"},
  "resources": [
    {"type": "[variables('t')]", "apiVersion": "2024-01-01", "name": "a", "location": "westeurope"},
    {"type": "[variables('t')]", "apiVersion": "2024-01-01", "name": "b", "location": "westeurope",
     "dependsOn": ["[resourceId('Keyhold.Test/gadgets', 'a')]"], "properties": {"slow": "[parameters('slow')]"}},
    {"type": "[variables('t')]", "apiVersion": "2024-01-01", "name": "c", "location": "westeurope", "dependsOn": ["b"],
     "properties": {"fromB": "[reference('b').serial]", "fail": "[parameters('failC')]"}}
  ],
  "outputs": {"serialC": {"type": "string", "value": "[reference('c').serial]"}}
}`
