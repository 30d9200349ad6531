package server

import (
	"bytes"
	"net/url"
	"strings"
	"testing"

	"github.com/keyhold/keyhold/identity"
	"github.com/keyhold/keyhold/internal/unitenv"
)

// TestDataSurface drives the environment data API through the whole
// server: authentication with the platform audience, the environment
// service's Open as the gate, and a file larger than the server's global
// body limit, which only file columns may send.
func TestDataSurface(t *testing.T) {
	s := start(t, t.TempDir(), &unitenv.Buffer{})
	defer s.Close()
	base := s.URL()
	bf, _ := readBootstrapFile(t, s.BootstrapFile())
	c := client(t, bf.CACertFile)
	tok := token(t, c, base, "organizations", url.Values{"grant_type": {"password"}, "client_id": {"04b07795-8ddb-461a-bbee-02f9e1bf7b46"},
		"username": {bf.AdminUsername}, "password": {bf.AdminPassword}, "scope": {identity.AudiencePlatform + "/.default"}})
	armToken := token(t, c, base, bf.TenantID, url.Values{"grant_type": {"client_credentials"}, "client_id": {bf.ClientID},
		"client_secret": {bf.ClientSecret}, "scope": {identity.AudienceManagement + "/.default"}})
	r := do(t, c, "POST", base+"providers/Microsoft.BusinessAppPlatform/environments?api-version=2020-10-01", tok,
		strings.NewReader(`{"location":"unitedstates","properties":{"displayName":"Data","environmentSku":"Sandbox"}}`), "Content-Type", "application/json")
	if r.status != 201 {
		t.Fatalf("create environment = %d %s", r.status, r.body)
	}
	env, _ := r.json(t)["name"].(string)
	api := base + "environments/" + env + "/api/data/v9.2/"
	js := []string{"Content-Type", "application/json"}

	if r := do(t, c, "GET", api+"tables", "", nil); r.status != 401 {
		t.Errorf("no token = %d %s", r.status, r.body)
	}
	if r := do(t, c, "GET", api+"tables", armToken, nil); r.status != 401 {
		t.Errorf("a resource-manager token = %d %s, want 401", r.status, r.body)
	}
	if r := do(t, c, "GET", base+"environments/00000000-0000-0000-0000-000000000999/api/data/v9.2/tables", tok, nil); r.status != 404 {
		t.Errorf("unknown environment = %d %s", r.status, r.body)
	}
	if r := do(t, c, "POST", api+"tables", tok, strings.NewReader(`{"name":"accounts","columns":[{"name":"name","type":"String"},{"name":"doc","type":"File"}]}`), js...); r.status != 201 {
		t.Fatalf("create table = %d %s", r.status, r.body)
	}
	r = do(t, c, "POST", api+"accounts", tok, strings.NewReader(`{"name":"Contoso"}`), js...)
	if r.status != 201 || r.header.Get("OData-EntityId") == "" {
		t.Fatalf("create row = %d %s", r.status, r.body)
	}
	id, _ := r.json(t)["accountsid"].(string)
	if r := do(t, c, "GET", api+"accounts("+id+")", tok, nil); r.status != 200 || !strings.Contains(string(r.body), "Contoso") {
		t.Errorf("get row = %d %s", r.status, r.body)
	}
	// A JSON body past the global limit is still refused.
	big := `{"name":"` + strings.Repeat("x", 5<<20) + `"}`
	if r := do(t, c, "PATCH", api+"accounts("+id+")", tok, strings.NewReader(big), js...); r.status != 413 && r.status != 400 {
		t.Errorf("oversized row = %d %s", r.status, r.body)
	}
	// A file past it is not.
	content := bytes.Repeat([]byte("0123456789abcdef"), 6<<20/16)
	if r := do(t, c, "PUT", api+"accounts("+id+")/doc", tok, bytes.NewReader(content), "x-ms-file-name", "doc.bin"); r.status != 200 {
		t.Fatalf("upload 6 MiB = %d %s", r.status, r.body)
	}
	r = do(t, c, "GET", api+"accounts("+id+")/doc/$value", tok, nil)
	if r.status != 200 || !bytes.Equal(r.body, content) {
		t.Fatalf("download = %d, %d bytes, want %d", r.status, len(r.body), len(content))
	}
	r = do(t, c, "GET", base+"metrics", "", nil)
	if !strings.Contains(string(r.body), `keyhold_data_requests_total{operation="file_get",outcome="ok"} 1`) {
		t.Errorf("metrics lack the data requests:\n%s", r.body)
	}
}
