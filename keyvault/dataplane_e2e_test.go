package keyvault_test

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/identity"
	"github.com/keyhold/keyhold/internal/testenv"
	"github.com/keyhold/keyhold/server"
)

// E2E harness: a real server.Start over TLS on 127.0.0.1:0 with a fresh
// data directory, a vault created through the resource manager, and the
// bootstrap service principal's credentials.

type e2eEnv struct {
	*testenv.Env
	sp *keyhold.Principal // the bootstrap service principal
}

func newE2E(t testing.TB, opts ...testenv.Option) *e2eEnv {
	t.Helper()
	env := testenv.Start(t, append([]testenv.Option{
		testenv.WithConfig(func(c *server.Config) {
			c.RegistrationDelay = 0 // the server's default
			c.Getenv = func(string) string { return "" }
			c.ShutdownTimeout = 5 * time.Second
		}),
		testenv.WithTimeout(time.Minute),
		// Parallel clients in the benchmark keep their connections.
		testenv.WithTransport(func(tr *http.Transport) { tr.MaxIdleConnsPerHost = 64 })}, opts...)...)
	return &e2eEnv{Env: env, sp: env.BootstrapPrincipal()}
}

// token issues a token for p and audience straight from the identity
// service, for raw-HTTP requests.
func (e *e2eEnv) token(t testing.TB, p *keyhold.Principal, audience string) string {
	t.Helper()
	return e.With(t).IssueToken(p, audience)
}

// do sends a raw request; body may be nil, a string or a value to marshal.
func (e *e2eEnv) do(t testing.TB, method, url, token string, body any) resp {
	t.Helper()
	res, b := e.With(t).Do(method, url, token, body, nil)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// createVault creates a vault through the resource manager, as a customer
// would, with an access policy giving the bootstrap principal every key
// permission, soft delete and purge protection.
func (e *e2eEnv) createVault(t testing.TB, name string, extra map[string]any) string {
	t.Helper()
	arm := e.token(t, e.sp, identity.AudienceManagement)
	sub := e.Boot.SubscriptionID
	base := e.Server.URL() + "subscriptions/" + sub
	must(t, e.do(t, "PUT", base+"/resourcegroups/rg-kv?api-version=2021-04-01", arm, `{"location":"westus"}`), 201)
	r := e.do(t, "POST", base+"/providers/Microsoft.KeyVault/register?api-version=2021-04-01", arm, nil)
	if r.status != 200 {
		t.Fatalf("register Microsoft.KeyVault: %d %s", r.status, r.body)
	}
	for i := 0; ; i++ {
		r := e.do(t, "GET", base+"/providers/Microsoft.KeyVault?api-version=2021-04-01", arm, nil)
		if strings.Contains(string(r.body), `"registrationState":"Registered"`) {
			break
		}
		if i == 100 {
			t.Fatalf("Microsoft.KeyVault did not register: %s", r.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	props := map[string]any{
		"tenantId": e.Boot.TenantID, "sku": map[string]string{"family": "A", "name": "standard"},
		"enableSoftDelete": true, "enablePurgeProtection": true, "softDeleteRetentionInDays": 90,
		"accessPolicies": []any{map[string]any{"tenantId": e.Boot.TenantID, "objectId": e.sp.ID,
			"permissions": map[string]any{"keys": []string{"all"}}}},
	}
	for k, v := range extra {
		props[k] = v
	}
	r = e.do(t, "PUT", base+"/resourceGroups/rg-kv/providers/Microsoft.KeyVault/vaults/"+name+"?api-version=2024-11-01", arm,
		map[string]any{"location": "westus", "properties": props})
	if r.status != 200 && r.status != 201 {
		t.Fatalf("create vault %s: %d %s", name, r.status, r.body)
	}
	return e.Server.URL() + "vaults/" + name
}

// counter counts the requests that reach the vault (by path, or by a host
// ending with hostSuffix) and the 401s among them.
type counter struct {
	next          http.RoundTripper
	hostSuffix    string
	vault, status atomic.Int64
	challenges    atomic.Int64
}

func (c *counter) Do(r *http.Request) (*http.Response, error) {
	res, err := c.next.RoundTrip(r)
	if strings.HasPrefix(r.URL.Path, "/vaults/") || c.hostSuffix != "" && strings.HasSuffix(r.URL.Hostname(), c.hostSuffix) {
		c.vault.Add(1)
		if err == nil && res.StatusCode == http.StatusUnauthorized {
			c.challenges.Add(1)
		}
	}
	return res, err
}
