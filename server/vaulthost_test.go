package server

import (
	"context"
	"crypto/tls"
	"io"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/keyhold/keyhold/identity"
)

// TestVaultHostRouting drives the whole handler with Host headers: every
// path of a host below --vault-domain is the vault's (an unknown vault is
// its 404, another surface's path never reached), the vault domain itself
// and the public host route by path as before, the token issuer grants the
// host-style resource, and the certificate covers *.<vault domain>.
func TestVaultHostRouting(t *testing.T) {
	s := start(t, t.TempDir(), io.Discard, func(c *Config) { c.VaultDomain = "Vault.Keyhold.Test." })
	defer s.Close()
	u, _ := url.Parse(s.URL())
	port := u.Port()
	if got, want := s.Vault().VaultURI("KV-One"), "https://kv-one.vault.keyhold.test:"+port+"/"; got != want {
		t.Errorf("VaultURI = %s, want %s", got, want)
	}
	hostAud := "https://vault.keyhold.test:" + port
	if got := s.Vault().HostAudience(); got != hostAud {
		t.Fatalf("HostAudience = %s, want %s", got, hostAud)
	}

	// The token endpoint grants the host-style resource, as azkeys asks
	// for it after the challenge.
	bf, _ := readBootstrapFile(t, s.BootstrapFile())
	if want := "https://{name}.vault.keyhold.test:" + port; bf.VaultURLTemplate != want {
		t.Errorf("bootstrap.json vault_url_template = %s, want %s", bf.VaultURLTemplate, want)
	}
	c := client(t, bf.CACertFile)
	hostTok := token(t, c, s.URL(), bf.TenantID, url.Values{"grant_type": {"client_credentials"}, "client_id": {bf.ClientID},
		"client_secret": {bf.ClientSecret}, "scope": {hostAud + "/.default"}})
	sp, err := s.Store().GetPrincipal(context.Background(), s.Bootstrap().ServicePrincipalID)
	if err != nil {
		t.Fatal(err)
	}
	vaultTok, _, err := s.Identity().IssueToken(context.Background(), sp, identity.AudienceVault)
	if err != nil {
		t.Fatal(err)
	}
	armTok, _, err := s.Identity().IssueToken(context.Background(), sp, identity.AudienceManagement)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, host, path, token string
		status                  int
		code                    string // error.code, "" for a success
		challenge               string // resource named by WWW-Authenticate
	}{
		{"unknown vault, no token", "nosuch.vault.keyhold.test:" + port, "/keys?api-version=7.6", "", 401, "Unauthorized", hostAud},
		{"unknown vault, host audience", "nosuch.vault.keyhold.test:" + port, "/keys?api-version=7.6", hostTok, 404, "VaultNotFound", ""},
		{"unknown vault, vault audience, no port", "NoSuch.Vault.Keyhold.Test", "/keys?api-version=7.6", vaultTok, 404, "VaultNotFound", ""},
		{"two labels below the domain", "a.b.vault.keyhold.test", "/keys?api-version=7.6", vaultTok, 404, "VaultNotFound", ""},
		{"management token refused", "nosuch.vault.keyhold.test", "/keys?api-version=7.6", armTok, 401, "Unauthorized", hostAud},
		{"health on a vault host", "nosuch.vault.keyhold.test", "/healthz", "", 401, "Unauthorized", hostAud},
		{"resource manager path on a vault host", "nosuch.vault.keyhold.test", "/subscriptions/" + bf.SubscriptionID + "/resourcegroups?api-version=7.6", hostTok, 404, "NotFound", ""},
		{"the vault domain itself routes by path", "vault.keyhold.test:" + port, "/healthz", "", 200, "", ""},
		{"public host, path-style vault", u.Host, "/vaults/nosuch/keys?api-version=7.6", hostTok, 404, "VaultNotFound", ""},
		{"public host, path-style challenge", u.Host, "/vaults/nosuch/keys?api-version=7.6", "", 401, "Unauthorized", identity.AudienceVault},
		{"public host, resource manager", u.Host, "/subscriptions/" + bf.SubscriptionID + "/resourcegroups?api-version=2021-04-01", armTok, 200, "", ""},
	}
	h := s.Handler()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "https://"+tt.host+tt.path, nil)
			req.TLS = &tls.ConnectionState{}
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			r := response{w.Code, w.Header(), w.Body.Bytes()}
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.code != "" {
				e, _ := r.json(t)["error"].(map[string]any)
				if e["code"] != tt.code {
					t.Errorf("error = %v, want code %s", e, tt.code)
				}
			}
			if got := r.header.Get("WWW-Authenticate"); tt.challenge != "" && !strings.HasSuffix(got, `resource="`+tt.challenge+`"`) {
				t.Errorf("WWW-Authenticate = %s, want resource %s", got, tt.challenge)
			}
		})
	}

	// The generated certificate covers every vault's host.
	leaf := s.http.TLSConfig.Certificates[0].Leaf
	for host, ok := range map[string]bool{"kv-one.vault.keyhold.test": true, "vault.keyhold.test": false, "127.0.0.1": true} {
		if err := leaf.VerifyHostname(host); (err == nil) != ok {
			t.Errorf("certificate VerifyHostname(%s) = %v, want ok %v", host, err, ok)
		}
	}
}
