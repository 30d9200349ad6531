package keyvault_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/events"
	"github.com/keyhold/keyhold/internal/unitenv"
	"github.com/keyhold/keyhold/keyvault"
	"github.com/keyhold/keyhold/rbac"
	"github.com/keyhold/keyhold/seal"
)

// Unit harness: the data plane's Handler over a real SQLite store, called
// in-process with a Caller in the context, as the server's surface wiring
// would put it there. A fake clock drives expiry and rotation.

const (
	testTenant = "6f1a3c1e-8c47-4b0c-9d1e-2b4a5c6d7e8f"
	testSub    = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"
	ownerOID   = "11111111-1111-4111-8111-111111111111"
	otherOID   = "22222222-2222-4222-8222-222222222222"
	testHost   = "kv.test:8443"
)

type unitEnv struct {
	t     testing.TB
	store keyhold.Store
	svc   *keyvault.Service
	// cfg is svc's configuration, for a second service on the same store.
	cfg   keyvault.Config
	clock *unitenv.Clock
	bus   *events.Bus
	sub   *events.Subscription
}

func newUnitEnv(t testing.TB) *unitEnv {
	t.Helper()
	st := unitenv.SQLite(t, "kv.db")
	key, err := seal.NewKey(seal.GenerateMasterKey())
	if err != nil {
		t.Fatal(err)
	}
	clk := unitenv.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	bus := events.New(nil)
	e := &unitEnv{t: t, store: st, clock: clk, bus: bus, sub: bus.Subscribe(nil)}
	t.Cleanup(e.sub.Close)
	e.cfg = keyvault.Config{
		Store: st, Seal: key, Authz: rbac.New(st), Events: bus,
		PublicURL: "https://" + testHost + "/", Now: clk.Now,
	}
	e.svc = keyvault.New(e.cfg)
	return e
}

// vaultID is the resource id of a test vault.
func vaultID(name string) string {
	return "/subscriptions/" + testSub + "/resourceGroups/rg-kv/providers/Microsoft.KeyVault/vaults/" + name
}

// putVault stores a vault resource as the management plane would: the
// owner has every key permission unless mod changes that.
func putVault(t testing.TB, st keyhold.Store, name, tenant string, mod func(*keyvault.Properties)) *keyhold.Resource {
	t.Helper()
	yes, days := true, 90
	p := keyvault.Properties{
		TenantID: tenant, SKU: keyvault.SKU{Family: "A", Name: "standard"},
		AccessPolicies: []keyvault.AccessPolicy{{TenantID: tenant, ObjectID: ownerOID,
			Permissions: keyvault.Permissions{Keys: []string{"all"}}}},
		EnableSoftDelete: &yes, SoftDeleteRetentionInDays: &days,
	}
	if mod != nil {
		mod(&p)
	}
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	r := &keyhold.Resource{ID: vaultID(name), SubscriptionID: testSub, ResourceGroup: "rg-kv", Type: keyvault.ResourceType,
		Name: name, Location: "westus", Properties: raw}
	if err := st.PutResource(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return r
}

func caller(oid string) *keyhold.Caller {
	return &keyhold.Caller{
		Principal: &keyhold.Principal{ID: oid, TenantID: testTenant, Type: keyhold.PrincipalServicePrincipal, AppID: "app-" + oid[:8]},
		TenantID:  testTenant, ClientID: "app-" + oid[:8],
	}
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t testing.TB) map[string]any {
	t.Helper()
	return unitenv.Response{Status: r.status, Body: r.body}.JSON(t)
}

// errorCodes returns error.code and error.innererror.code of an error body.
func (r resp) errorCodes(t testing.TB) (code, inner string) {
	t.Helper()
	var e struct {
		Error struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			InnerError *struct {
				Code string `json:"code"`
			} `json:"innererror"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("body %q is not an Azure error (%v)", r.body, err)
	}
	if e.Error.InnerError != nil {
		inner = e.Error.InnerError.Code
	}
	return e.Error.Code, inner
}

// call sends a request through the handler as c; body may be a string, raw
// bytes or a value to marshal. The path gets ?api-version=7.6 unless it has
// a query.
func (e *unitEnv) call(c *keyhold.Caller, method, path string, body any) resp {
	e.t.Helper()
	return e.callT(e.t, c, method, path, body)
}

// callT is call reporting to t, for fuzz targets, whose *testing.F must not
// be used inside the target.
func (e *unitEnv) callT(t testing.TB, c *keyhold.Caller, method, path string, body any) resp {
	t.Helper()
	if !strings.Contains(path, "?") {
		path += "?api-version=7.6"
	}
	r := httptest.NewRequest(method, "https://"+testHost+path, unitenv.Body(t, body))
	r.RemoteAddr = "192.0.2.10:5555"
	if c != nil {
		r = r.WithContext(keyhold.WithCaller(r.Context(), c))
	}
	w := unitenv.Serve(e.svc.Handler(), r)
	return resp{status: w.Status, header: w.Header, body: w.Body}
}

// must fails the test unless r has status want.
func must(t testing.TB, r resp, want int) resp {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d; body %s", r.status, want, r.body)
	}
	return r
}

// drain returns the events published so far.
func (e *unitEnv) drain() []events.Event { return unitenv.Drain(e.sub) }
