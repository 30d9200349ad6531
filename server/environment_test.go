package server

import (
	"net/url"
	"strings"
	"testing"

	"github.com/keyhold/keyhold/identity"
	"github.com/keyhold/keyhold/internal/unitenv"
)

// TestEnvironmentSurface drives the BAP surface through the whole server:
// a platform administrator creates, reads and deletes an environment with a
// token for the platform audience, the resource manager keeps /providers,
// and the vault-call counter is on /metrics.
func TestEnvironmentSurface(t *testing.T) {
	s := start(t, t.TempDir(), &unitenv.Buffer{})
	defer s.Close()
	base := s.URL()
	bf, _ := readBootstrapFile(t, s.BootstrapFile())
	c := client(t, bf.CACertFile)
	bapToken := token(t, c, base, "organizations", url.Values{"grant_type": {"password"}, "client_id": {"04b07795-8ddb-461a-bbee-02f9e1bf7b46"},
		"username": {bf.AdminUsername}, "password": {bf.AdminPassword}, "scope": {identity.AudiencePlatform + "/.default"}})
	armToken := token(t, c, base, bf.TenantID, url.Values{"grant_type": {"client_credentials"}, "client_id": {bf.ClientID},
		"client_secret": {bf.ClientSecret}, "scope": {identity.AudienceManagement + "/.default"}})
	envs := base + "providers/Microsoft.BusinessAppPlatform/environments"

	if r := do(t, c, "GET", envs+"?api-version=2020-10-01", "", nil); r.status != 401 {
		t.Fatalf("no token = %d %s", r.status, r.body)
	}
	if r := do(t, c, "GET", envs+"?api-version=2020-10-01", armToken, nil); r.status != 401 {
		t.Fatalf("a resource-manager token on BAP = %d %s, want 401", r.status, r.body)
	}
	r := do(t, c, "POST", envs+"?api-version=2020-10-01", bapToken,
		strings.NewReader(`{"location":"unitedstates","properties":{"displayName":"E2E","environmentSku":"Sandbox"}}`), "Content-Type", "application/json")
	if r.status != 201 {
		t.Fatalf("create = %d %s", r.status, r.body)
	}
	id, _ := r.json(t)["name"].(string)
	r = do(t, c, "GET", base+"providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/"+id+"?api-version=2016-11-01", bapToken, nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"keyManagedBy":"Microsoft"`) {
		t.Fatalf("get = %d %s", r.status, r.body)
	}
	if r := do(t, c, "GET", base+"providers/Microsoft.PowerPlatform/operations?api-version=2020-10-30", armToken, nil); r.status != 200 {
		t.Fatalf("the resource manager's /providers = %d %s", r.status, r.body)
	}
	if r := do(t, c, "DELETE", envs+"/"+id+"?api-version=2020-10-01", bapToken, nil); r.status != 204 {
		t.Fatalf("delete = %d %s", r.status, r.body)
	}
	r = do(t, c, "GET", base+"metrics", "", nil)
	if !strings.Contains(string(r.body), `keyhold_kms_calls_total{kind="wrap",outcome="ok"} 1`) {
		t.Fatalf("metrics lack the wrap of the new root key:\n%s", r.body)
	}
}
