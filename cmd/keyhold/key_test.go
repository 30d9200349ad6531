package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/internal/testenv"
	"github.com/keyhold/keyhold/keyvault"
	"github.com/keyhold/keyhold/server"
)

// keyHarness is a harness over a real server started in-process (no fake):
// its run and ok are the harness's.
type keyHarness = harness

// newKeyHarness runs the CLI against a real server started in-process,
// signed in with its bootstrap.json, with a vault whose access policy gives
// the administrator every key permission.
func newKeyHarness(t *testing.T) *keyHarness {
	t.Helper()
	dir := t.TempDir()
	srv := testenv.Start(t, testenv.WithDir(filepath.Join(dir, "data")), testenv.WithConfig(func(c *server.Config) {
		c.RegistrationDelay = 0 // the server's default
		c.Getenv = func(string) string { return "" }
		c.ShutdownTimeout = 5 * time.Second
	})).Server
	info := srv.Bootstrap()
	props, _ := json.Marshal(keyvault.Properties{
		TenantID: info.TenantID, SKU: keyvault.SKU{Family: "A", Name: "standard"},
		AccessPolicies: []keyvault.AccessPolicy{{TenantID: info.TenantID, ObjectID: info.AdminID,
			Permissions: keyvault.Permissions{Keys: []string{"all"}}}},
	})
	err := srv.Store().PutResource(context.Background(), &keyhold.Resource{
		ID:   "/subscriptions/" + info.SubscriptionID + "/resourceGroups/rg-cli/providers/Microsoft.KeyVault/vaults/kv-cli",
		Type: keyvault.ResourceType, Name: "kv-cli", SubscriptionID: info.SubscriptionID, ResourceGroup: "rg-cli",
		Location: "westus", Properties: props,
	})
	if err != nil {
		t.Fatal(err)
	}
	h := &keyHarness{t: t, dir: dir, env: map[string]string{"KEYHOLD_CONFIG": filepath.Join(dir, "profile.json"), "HOME": dir}}
	h.ok("login", "--bootstrap", srv.BootstrapFile())
	return h
}

func TestKeyCommands(t *testing.T) {
	h := newKeyHarness(t)
	v := []string{"--vault", "kv-cli"}
	with := func(args ...string) []string { return append(append([]string{}, args...), v...) }

	out := h.ok(with("key", "create", "--name", "cmk", "--size", "3072", "--tag", "env=test", "--expires", "+8760h")...)
	if !strings.Contains(out, "cmk") || !strings.Contains(out, "RSA") || !strings.Contains(out, "wrapKey") {
		t.Errorf("create table:\n%s", out)
	}
	var b struct {
		Key struct {
			KID string `json:"kid"`
			N   string `json:"n"`
		} `json:"key"`
		Attributes struct {
			Expires int64 `json:"exp"`
		} `json:"attributes"`
		Tags map[string]string `json:"tags"`
	}
	if err := json.Unmarshal([]byte(h.ok(with("key", "show", "--name", "cmk", "-o", "json")...)), &b); err != nil {
		t.Fatal(err)
	}
	if len(b.Key.N) < 500 || b.Tags["env"] != "test" || b.Attributes.Expires < time.Now().Add(8000*time.Hour).Unix() {
		t.Errorf("show json = %+v", b)
	}
	h.ok(with("key", "rotate", "--name", "cmk")...)
	if out := h.ok(with("key", "versions", "--name", "cmk")...); strings.Count(out, "\n") != 3 {
		t.Errorf("versions after rotate:\n%s", out)
	}

	// Wrap and unwrap through files and base64url.
	cek := filepath.Join(h.dir, "cek.bin")
	os.WriteFile(cek, []byte("0123456789abcdef0123456789abcdef"), 0o600)
	wrapped := filepath.Join(h.dir, "cek.wrapped")
	h.ok(with("key", "wrap", "--name", "cmk", "--in", cek, "--out", wrapped)...)
	var unwrapped struct{ Value string }
	if err := json.Unmarshal([]byte(h.ok(with("key", "unwrap", "--name", "cmk", "--in", wrapped, "-o", "json")...)), &unwrapped); err != nil {
		t.Fatal(err)
	}
	if unwrapped.Value != "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY" {
		t.Errorf("unwrap = %q", unwrapped.Value)
	}

	// Disable: wrap is refused with the server's words.
	h.ok(with("key", "update", "--name", "cmk", "--enabled", "false")...)
	code, _, errOut := h.run(with("key", "wrap", "--name", "cmk", "--value", "AAEC")...)
	if code != exitError || !strings.Contains(errOut, "disabled key") || !strings.Contains(errOut, "Forbidden") {
		t.Errorf("wrap on a disabled key: exit %d, %s", code, errOut)
	}
	h.ok(with("key", "update", "--name", "cmk", "--enabled", "true")...)

	// Import a PEM EC key.
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(ek)
	pemFile := filepath.Join(h.dir, "ec.pem")
	os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	if out := h.ok(with("key", "import", "--name", "byok", "--file", pemFile)...); !strings.Contains(out, "EC") || !strings.Contains(out, "sign,verify") {
		t.Errorf("import:\n%s", out)
	}
	if out := h.ok(with("key", "list")...); !strings.Contains(out, "byok") || !strings.Contains(out, "cmk") {
		t.Errorf("list:\n%s", out)
	}

	// Delete, recover, delete, purge.
	if out := h.ok(with("key", "delete", "--name", "byok")...); !strings.Contains(out, "can be recovered until") {
		t.Errorf("delete: %s", out)
	}
	h.ok(with("key", "recover", "--name", "byok")...)
	h.ok(with("key", "delete", "--name", "byok")...)
	if out := h.ok(with("key", "list", "--deleted")...); !strings.Contains(out, "byok") {
		t.Errorf("deleted list:\n%s", out)
	}
	h.ok(with("key", "purge", "--name", "byok", "--yes")...)
	if code, _, errOut := h.run(with("key", "show", "--name", "byok")...); code != exitError || !strings.Contains(errOut, "KeyNotFound") {
		t.Errorf("show after purge: exit %d %s", code, errOut)
	}
}

func TestKeyUsageErrors(t *testing.T) {
	h := &keyHarness{t: t, dir: t.TempDir(), env: map[string]string{"KEYHOLD_CONFIG": filepath.Join(t.TempDir(), "p.json")}}
	tests := []struct {
		args   []string
		phrase string
	}{
		{[]string{"key", "create", "--name", "k"}, "--vault is required"},
		{[]string{"key", "show", "--vault", "v"}, "--name is required"},
		{[]string{"key", "wrap", "--vault", "v", "--name", "k"}, "exactly one of --value and --in"},
		{[]string{"key", "update", "--vault", "v", "--name", "k"}, "nothing to change"},
		{[]string{"key", "update", "--vault", "v", "--name", "k", "--enabled", "maybe"}, "true or false"},
		{[]string{"key", "create", "--vault", "v", "--name", "k", "--expires", "tomorrow"}, "RFC 3339"},
		{[]string{"key", "purge", "--vault", "v", "--name", "k"}, "--yes"},
		{[]string{"key", "import", "--vault", "v", "--name", "k"}, "--file is required"},
	}
	for _, tt := range tests {
		code, _, errOut := h.run(tt.args...)
		if code != exitUsage || !strings.Contains(errOut, tt.phrase) {
			t.Errorf("keyhold %s: exit %d %q, want 2 naming %q", strings.Join(tt.args, " "), code, errOut, tt.phrase)
		}
	}
	if code, out, _ := h.run("key", "--help"); code != 0 || !strings.Contains(out, "unwrap") || !strings.Contains(out, "never leave") {
		t.Errorf("key --help: %d\n%s", code, out)
	}
}

func TestPrivateJWK(t *testing.T) {
	ek, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der, _ := x509.MarshalECPrivateKey(ek)
	j, err := privateJWK(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), []string{"sign"})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(j, &m)
	if m["crv"] != "P-384" || m["d"] == nil || len(m["x"].(string)) != 64 {
		t.Errorf("jwk = %v", m)
	}
	for _, bad := range []string{"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", `{"kty":"RSA","n":"AQAB","e":"AQAB"}`, "junk"} {
		if _, err := privateJWK([]byte(bad), nil); err == nil {
			t.Errorf("privateJWK(%q) accepted", bad)
		}
	}
}
