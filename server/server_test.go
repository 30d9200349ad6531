package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/identity"
	"github.com/keyhold/keyhold/internal/unitenv"
)

func noEnv(string) string { return "" }

func start(t *testing.T, dir string, logs io.Writer, mod ...func(*Config)) *Server {
	t.Helper()
	cfg := Config{Listen: "127.0.0.1:0", DataDir: dir, Getenv: noEnv, ShutdownTimeout: 5 * time.Second}
	for _, m := range mod {
		m(&cfg)
	}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := Start(context.Background(), cfg, logger)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return s
}

func readBootstrapFile(t *testing.T, path string) (BootstrapFileContents, map[string]any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var bf BootstrapFileContents
	var raw map[string]any
	if err := json.Unmarshal(b, &bf); err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(b, &raw)
	return bf, raw
}

// client trusts only the CA named in bootstrap.json.
func client(t *testing.T, caFile string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no certificate in the CA file")
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.body, err)
	}
	return m
}

func do(t *testing.T, c *http.Client, method, u, token string, body io.Reader, hdr ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

func token(t *testing.T, c *http.Client, base, tenant string, form url.Values) string {
	t.Helper()
	r := do(t, c, "POST", base+tenant+"/oauth2/v2.0/token", "", strings.NewReader(form.Encode()), "Content-Type", "application/x-www-form-urlencoded")
	if r.status != 200 {
		t.Fatalf("token: %d %s", r.status, r.body)
	}
	tok, _ := r.json(t)["access_token"].(string)
	if tok == "" {
		t.Fatalf("token response without access_token: %s", r.body)
	}
	return tok
}

func TestServerEndToEnd(t *testing.T) {
	dir := t.TempDir()
	logs := &unitenv.Buffer{}
	s := start(t, dir, logs)
	base := s.URL()
	if !strings.HasPrefix(base, "https://127.0.0.1:") || !strings.HasSuffix(base, "/") {
		t.Errorf("URL = %q, want https://127.0.0.1:<port>/", base)
	}

	// bootstrap.json: mode 0600, every field set.
	fi, err := os.Stat(filepath.Join(dir, BootstrapFile))
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("bootstrap.json mode = %v, want 0600", got)
	}
	bf, raw := readBootstrapFile(t, s.BootstrapFile())
	for _, k := range []string{"tenant_id", "subscription_id", "authority_host", "resource_manager_endpoint", "resource_manager_audience",
		"bap_endpoint", "bap_audience", "vault_url_template", "vault_audience", "graph_endpoint", "graph_audience",
		"ca_cert_file", "admin_username", "admin_password", "client_id", "client_secret"} {
		if v, _ := raw[k].(string); v == "" {
			t.Errorf("bootstrap.json: %s is missing or empty", k)
		}
	}
	if len(raw) != 16 {
		t.Errorf("bootstrap.json has %d fields, want 16", len(raw))
	}
	wantFields := map[string]string{
		"authority_host": base, "resource_manager_endpoint": base, "vault_url_template": base + "vaults/{name}",
		"resource_manager_audience": identity.AudienceManagement, "graph_audience": identity.AudienceGraph,
		"bap_audience": identity.AudiencePlatform, "vault_audience": identity.AudienceVault,
		"ca_cert_file": filepath.Join(dir, "ca.pem"),
	}
	for k, want := range wantFields {
		if raw[k] != want {
			t.Errorf("bootstrap.json %s = %v, want %s", k, raw[k], want)
		}
	}
	if len(bf.AdminPassword) < 20 || !strings.HasPrefix(bf.AdminUsername, "admin@") {
		t.Errorf("admin %q with a %d-character password, want admin@... and 20+", bf.AdminUsername, len(bf.AdminPassword))
	}
	c := client(t, bf.CACertFile)

	// Health and metrics need no token.
	r := do(t, c, "GET", base+"healthz", "", nil)
	if r.status != 200 || r.json(t)["status"] != "ok" {
		t.Errorf("/healthz = %d %s", r.status, r.body)
	}
	if r.header.Get("x-ms-request-id") == "" {
		t.Error("no x-ms-request-id on /healthz")
	}

	// No token: 401 with a challenge, for every authenticated surface.
	sub := "/subscriptions/" + bf.SubscriptionID
	for _, tc := range []struct{ path, tenant string }{
		{"subscriptions?api-version=2022-12-01", "common"},
		{strings.TrimPrefix(sub, "/") + "/resourcegroups?api-version=2021-04-01", bf.TenantID},
		{"v1.0/users", "common"},
		{"keyhold/v1/audit", "common"},
		{"keyhold/v1/anything", "common"},
	} {
		r := do(t, c, "GET", base+tc.path, "", nil)
		if r.status != 401 {
			t.Errorf("GET /%s without a token = %d, want 401", tc.path, r.status)
			continue
		}
		ch := r.header.Get("WWW-Authenticate")
		wantURI := `Bearer authorization_uri="` + base + tc.tenant + `/oauth2/authorize", error="invalid_token", error_description="`
		if !strings.HasPrefix(ch, wantURI) {
			t.Errorf("GET /%s: WWW-Authenticate = %q, want prefix %q", tc.path, ch, wantURI)
		}
		e, _ := r.json(t)["error"].(map[string]any)
		if code, _ := e["code"].(string); code != "AuthenticationFailed" && code != "InvalidAuthenticationToken" {
			t.Errorf("GET /%s: error %v, want the Azure shape with AuthenticationFailed", tc.path, e)
		}
	}
	r = do(t, c, "GET", base+"subscriptions", "not-a-jwt", nil)
	if r.status != 401 || !strings.Contains(r.header.Get("WWW-Authenticate"), "invalid_token") {
		t.Errorf("bad token = %d %q, want 401 with a challenge", r.status, r.header.Get("WWW-Authenticate"))
	}

	// Unknown paths are 404 in the Azure shape; ids are echoed.
	r = do(t, c, "GET", base+"no/such/path", "", nil, "x-ms-client-request-id", "client-id-1", "x-ms-correlation-request-id", "corr-1")
	if r.status != 404 || r.json(t)["error"] == nil {
		t.Errorf("unknown path = %d %s, want a 404 Azure error", r.status, r.body)
	}
	if r.header.Get("x-ms-client-request-id") != "client-id-1" || r.header.Get("x-ms-correlation-request-id") != "corr-1" {
		t.Errorf("ids not echoed: %v", r.header)
	}

	// The service principal signs in and creates a resource group.
	spToken := token(t, c, base, bf.TenantID, url.Values{"grant_type": {"client_credentials"}, "client_id": {bf.ClientID},
		"client_secret": {bf.ClientSecret}, "scope": {identity.AudienceManagement + "/.default"}})
	r = do(t, c, "PUT", base+strings.TrimPrefix(sub, "/")+"/resourcegroups/rg-e2e?api-version=2021-04-01", spToken,
		strings.NewReader(`{"location":"westus"}`), "Content-Type", "application/json")
	if r.status != 201 && r.status != 200 {
		t.Fatalf("PUT resource group = %d %s", r.status, r.body)
	}
	// The wrong audience is refused.
	graphToken := token(t, c, base, bf.TenantID, url.Values{"grant_type": {"client_credentials"}, "client_id": {bf.ClientID},
		"client_secret": {bf.ClientSecret}, "scope": {identity.AudienceGraph + "/.default"}})
	if r := do(t, c, "GET", base+"subscriptions?api-version=2022-12-01", graphToken, nil); r.status != 401 {
		t.Errorf("graph token on ARM = %d, want 401", r.status)
	}

	// The Global Administrator reads the audit log and verifies it.
	adminToken := token(t, c, base, "organizations", url.Values{"grant_type": {"password"}, "client_id": {"04b07795-8ddb-461a-bbee-02f9e1bf7b46"},
		"username": {bf.AdminUsername}, "password": {bf.AdminPassword}, "scope": {identity.AudienceManagement + "/.default"}})
	r = do(t, c, "GET", base+"keyhold/v1/audit?top=1000", adminToken, nil)
	if r.status != 200 {
		t.Fatalf("audit list = %d %s", r.status, r.body)
	}
	var list struct{ Value []*keyhold.AuditRecord }
	json.Unmarshal(r.body, &list)
	var sawPut, sawSignIn bool
	for _, rec := range list.Value {
		if rec.Method == "PUT" && strings.Contains(strings.ToLower(rec.Scope), "/resourcegroups/rg-e2e") {
			sawPut = true
			if rec.PrincipalID == "" || rec.Status >= 300 || rec.Result != "Succeeded" || rec.RequestID == "" || rec.ClientIP != "127.0.0.1" {
				t.Errorf("PUT record = %+v", rec)
			}
		}
		if rec.Action == "sign-in" && rec.PrincipalName == bf.ClientID {
			sawSignIn = true
		}
	}
	if !sawPut || !sawSignIn {
		t.Errorf("audit log lacks the PUT (%v) or the sign-in (%v): %s", sawPut, sawSignIn, r.body)
	}
	// The service principal is no Global Administrator: it must name a scope it may read.
	if r := do(t, c, "GET", base+"keyhold/v1/audit", spToken, nil); r.status != 403 {
		t.Errorf("SP audit list without scope = %d, want 403", r.status)
	}
	r = do(t, c, "GET", base+"keyhold/v1/audit/verify", adminToken, nil)
	if r.status != 200 || r.json(t)["verified"] != true {
		t.Fatalf("verify = %d %s", r.status, r.body)
	}

	r = do(t, c, "GET", base+"metrics", "", nil)
	for _, want := range []string{`keyhold_http_requests_total{code="401",method="GET",surface="arm"}`, `keyhold_http_request_duration_seconds`, `keyhold_audit_append_failures_total 0`} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	ca1, _ := os.ReadFile(bf.CACertFile)
	bootstrap1, _ := os.ReadFile(s.BootstrapFile())
	info1 := s.Bootstrap()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// A restart keeps the tenant, subscription, CA and bootstrap.json.
	s2 := start(t, dir, logs)
	if got := s2.Bootstrap(); got.TenantID != info1.TenantID || got.SubscriptionID != info1.SubscriptionID {
		t.Errorf("restart bootstrap = %+v, want the ids of %+v", got, info1)
	}
	ca2, _ := os.ReadFile(bf.CACertFile)
	if !bytes.Equal(ca1, ca2) {
		t.Error("restart changed ca.pem")
	}
	// bootstrap.json keeps its secrets and follows the new endpoint (the
	// restart listens on another random port).
	var before, after BootstrapFileContents
	bootstrap2, _ := os.ReadFile(s2.BootstrapFile())
	if json.Unmarshal(bootstrap1, &before) != nil || json.Unmarshal(bootstrap2, &after) != nil {
		t.Fatal("bootstrap.json is not JSON")
	}
	if after.AdminPassword != before.AdminPassword || after.ClientSecret != before.ClientSecret || after.TenantID != before.TenantID {
		t.Error("restart changed the secrets or tenant in bootstrap.json")
	}
	if after.AuthorityHost != s2.URL() || after.VaultURLTemplate != s2.URL()+"vaults/{name}" {
		t.Errorf("bootstrap.json endpoints = %s, want %s", after.AuthorityHost, s2.URL())
	}
	if fi, err := os.Stat(s2.BootstrapFile()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("bootstrap.json mode after restart = %v, %v", fi.Mode(), err)
	}
	tenants, err := s2.Store().ListTenants(context.Background())
	if err != nil || len(tenants) != 1 {
		t.Errorf("tenants after restart = %d (%v), want 1", len(tenants), err)
	}
	// The old CA still verifies the new server's certificate.
	c2 := client(t, bf.CACertFile)
	if r := do(t, c2, "GET", s2.URL()+"healthz", "", nil); r.status != 200 {
		t.Errorf("healthz after restart = %d", r.status)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}

	// No secret reaches the log.
	mk, _ := os.ReadFile(filepath.Join(dir, "master.key"))
	out := logs.String()
	for name, secret := range map[string]string{"admin password": bf.AdminPassword, "client secret": bf.ClientSecret,
		"master key": strings.TrimSpace(string(mk)), "access token": spToken, "admin token": adminToken} {
		if secret == "" || strings.Contains(out, secret) {
			t.Errorf("the log holds the %s (or it is empty)", name)
		}
	}
	for _, want := range []string{`"msg":"request"`, `"path":"/healthz"`, "granted Owner", "already bootstrapped"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q", want)
		}
	}
	if strings.Contains(out, "api-version") {
		t.Error("the access log holds a query string")
	}
}

func TestAuditTamperDetected(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir, io.Discard)
	bf, _ := readBootstrapFile(t, s.BootstrapFile())
	c := client(t, bf.CACertFile)
	form := url.Values{"grant_type": {"password"}, "client_id": {"04b07795-8ddb-461a-bbee-02f9e1bf7b46"},
		"username": {bf.AdminUsername}, "password": {bf.AdminPassword}, "scope": {identity.AudienceManagement + "/.default"}}
	token(t, c, s.URL(), bf.TenantID, form)
	token(t, c, s.URL(), bf.TenantID, form)
	s.Close()

	db, err := sql.Open("sqlite", filepath.Join(dir, DefaultDBFile))
	if err != nil {
		t.Fatal(err)
	}
	res, err := db.Exec(`UPDATE audit_log SET principal_name = 'someone-else' WHERE seq = 1`)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("tampered with %d records, want 1", n)
	}
	db.Close()

	s = start(t, dir, io.Discard)
	defer s.Close()
	admin := token(t, c, s.URL(), bf.TenantID, form)
	r := do(t, c, "GET", s.URL()+"keyhold/v1/audit/verify", admin, nil)
	if r.status != 409 {
		t.Fatalf("verify after tampering = %d %s, want 409", r.status, r.body)
	}
	e, _ := r.json(t)["error"].(map[string]any)
	if e["code"] != "AuditChainBroken" || !strings.Contains(e["message"].(string), "record 1 was altered") {
		t.Errorf("error = %v, want AuditChainBroken naming record 1", e)
	}
}

func TestWrongMasterKeyFailsClearly(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir, io.Discard)
	s.Close()
	other := "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
	_, err := Start(context.Background(), Config{Listen: "127.0.0.1:0", DataDir: dir, Getenv: func(k string) string {
		if k == "KEYHOLD_MASTER_KEY" {
			return other
		}
		return ""
	}}, nil)
	if err == nil {
		t.Fatal("Start with another master key succeeded")
	}
	if !strings.Contains(err.Error(), "environment variable KEYHOLD_MASTER_KEY") || strings.Contains(err.Error(), other) {
		t.Errorf("error %q should name the source and not the key", err)
	}
}

func TestDeletedBootstrapFileIsNotRecreated(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir, io.Discard)
	s.Close()
	os.Remove(filepath.Join(dir, BootstrapFile))
	logs := &unitenv.Buffer{}
	s = start(t, dir, logs)
	s.Close()
	if _, err := os.Stat(filepath.Join(dir, BootstrapFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bootstrap.json was recreated (err %v)", err)
	}
	if !strings.Contains(logs.String(), "cannot be recovered") {
		t.Errorf("the log does not say the secrets are lost: %s", logs)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"bad listen", Config{Listen: "8443"}, "--listen"},
		{"bad profile", Config{Profile: "beta"}, "--profile"},
		{"cert without key", Config{TLSCertFile: "x.pem"}, "--tls-key"},
		{"bad public url", Config{PublicURL: "keyhold.example"}, "--public-url"},
		{"short token lifetime", Config{TokenLifetime: time.Second}, "--token-lifetime"},
		{"vault domain with a scheme", Config{VaultDomain: "https://vault.example.test"}, "--vault-domain"},
		{"vault domain with a port", Config{VaultDomain: "vault.example.test:8443"}, "--vault-domain"},
		{"vault domain wildcard", Config{VaultDomain: "*.vault.example.test"}, "--vault-domain"},
		{"vault domain of one label", Config{VaultDomain: "vault"}, "--vault-domain"},
		{"vault domain an IP address", Config{VaultDomain: "10.0.0.1"}, "--vault-domain"},
		{"public URL below the vault domain", Config{VaultDomain: "vault.example.test", PublicURL: "https://kv.vault.example.test/"}, "--public-url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.DataDir = t.TempDir()
			_, err := Start(context.Background(), tt.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one naming %s", err, tt.want)
			}
		})
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *Server, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Getenv: noEnv, OnReady: func(s *Server) { ready <- s }}, nil)
	}()
	var s *Server
	select {
	case s = <-ready:
	case err := <-done:
		t.Fatalf("Run returned early: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not become ready")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil after cancel", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not stop")
	}
	if _, err := http.Get("http://" + s.Addr().String()); err == nil {
		t.Error("the server still answers after Run returned")
	}
}

func TestIsIdentityPath(t *testing.T) {
	tests := map[string]bool{
		"/common/oauth2/v2.0/token":                               true,
		"/organizations/oauth2/v2.0/token":                        true,
		"/11111111-2222-3333-4444-555555555555/v2.0/.well-known/": true,
		"/contoso.onkeyhold.internal/oauth2/v2.0/token":           true,
		"/common/userrealm/admin@x":                               true,
		"/subscriptions/11111111-2222-3333-4444-555555555555":     false,
		"/v1.0/users":       false,
		"/keyhold/v1/audit": false,
		"/healthz":          false,
		"/":                 false,
	}
	for path, want := range tests {
		if got := isIdentityPath(path); got != want {
			t.Errorf("isIdentityPath(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestNewPassword(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 50; i++ {
		p, err := newPassword(adminPasswordLen)
		if err != nil {
			t.Fatal(err)
		}
		s := string(p.Reveal())
		if len(s) != adminPasswordLen || !hasClasses(p.Reveal()) || seen[s] {
			t.Fatalf("password %d: length %d, classes %v, repeated %v", i, len(s), hasClasses(p.Reveal()), seen[s])
		}
		seen[s] = true
	}
}

func TestHealthzReportsStoreDown(t *testing.T) {
	s := start(t, t.TempDir(), io.Discard)
	defer s.Close()
	h := s.Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != 200 {
		t.Fatalf("healthz = %d, want 200", rec.Code)
	}
	s.store.Close()
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "unavailable") {
		t.Errorf("healthz with the store closed = %d %s, want 503", rec.Code, rec.Body)
	}
}
