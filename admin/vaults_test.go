package admin_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/internal/testenv"
)

// kvPages is a signed-in person using the key vault pages over HTTP. It
// keeps every body it was answered with, so a test can check that no key
// material ever came back.
type kvPages struct {
	t      *testing.T
	c      *http.Client
	base   string
	csrf   string
	bodies []string
}

func openKVPages(t *testing.T, e *testenv.Env, upn, password string) *kvPages {
	t.Helper()
	p := &kvPages{t: t, c: pageClient(t, e), base: strings.TrimSuffix(e.Server.URL(), "/")}
	if resp, body := do(t, p.c, "POST", p.base+"/admin/signin", url.Values{"username": {upn}, "password": {password}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in as %s: %d %s", upn, resp.StatusCode, body)
	}
	_, home := p.get("/admin/vaults")
	i := strings.Index(home, `name="csrf" value="`)
	if i < 0 {
		t.Fatalf("the vaults page has no CSRF field: %s", home)
	}
	tok := home[i+len(`name="csrf" value="`):]
	p.csrf = tok[:strings.IndexByte(tok, '"')]
	return p
}

func (p *kvPages) get(path string) (*http.Response, string) {
	p.t.Helper()
	resp, body := do(p.t, p.c, "GET", p.base+path, nil)
	p.bodies = append(p.bodies, body)
	return resp, body
}

func (p *kvPages) post(path string, form url.Values) (*http.Response, string) {
	p.t.Helper()
	f := url.Values{"csrf": {p.csrf}}
	for k, v := range form {
		f[k] = v
	}
	resp, body := do(p.t, p.c, "POST", p.base+path, f)
	p.bodies = append(p.bodies, body)
	return resp, body
}

// postFile posts a multipart form with file as the key file.
func (p *kvPages) postFile(path string, form url.Values, file []byte) (*http.Response, string) {
	p.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("csrf", p.csrf)
	for k, vs := range form {
		for _, v := range vs {
			mw.WriteField(k, v)
		}
	}
	fw, err := mw.CreateFormFile("keyfile", "key.pem")
	if err != nil {
		p.t.Fatal(err)
	}
	fw.Write(file)
	mw.Close()
	req, err := http.NewRequest("POST", p.base+path, &buf)
	if err != nil {
		p.t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := p.c.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	p.bodies = append(p.bodies, string(b))
	return resp, string(b)
}

// flash follows a redirect and returns the page's flash message.
func (p *kvPages) flash(resp *http.Response) string {
	p.t.Helper()
	if resp.StatusCode != http.StatusSeeOther {
		p.t.Fatalf("status %d, want a redirect", resp.StatusCode)
	}
	_, body := p.get(resp.Header.Get("Location"))
	i := strings.Index(body, `<p class="flash" role="status">`)
	if i < 0 {
		return ""
	}
	rest := body[i+len(`<p class="flash" role="status">`):]
	return rest[:strings.Index(rest, "</p>")]
}

// kvEnv is a server with a key vault administrator (Owner on the
// subscription) signed in to the pages and a vault made through them.
type kvEnv struct {
	e         *testenv.Env
	sp        *client.Client
	kv        *client.Client // the key vault administrator, through the APIs
	pages     *kvPages
	kvID      string
	sub       string
	vaultPath string
}

const kvAdminPassword = "Kv-admin-password-42!"

func startKV(t *testing.T, opts ...testenv.Option) *kvEnv {
	t.Helper()
	e := testenv.Start(t, opts...)
	ctx := context.Background()
	base, err := client.New(client.Config{Server: e.Server.URL(), HTTPClient: e.HTTP, PollInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	k := &kvEnv{e: e, sub: e.Boot.SubscriptionID}
	k.sp = base.WithTokens(client.NewCredentialSource(base, e.Boot.TenantID,
		client.Credential{ClientID: e.Boot.ClientID, ClientSecret: keyhold.NewSecret([]byte(e.Boot.ClientSecret))}, nil))
	var upn string
	k.kvID, upn = e.CreateUser("kvadmin", kvAdminPassword)
	if _, err := k.sp.CreateRoleAssignment(ctx, "/subscriptions/"+k.sub, "/subscriptions/"+k.sub+"/providers/Microsoft.Authorization/roleDefinitions/"+ownerRoleID, k.kvID, "User"); err != nil {
		t.Fatal(err)
	}
	k.kv = base.WithTokens(client.NewCredentialSource(base, e.Boot.TenantID, client.Credential{Username: upn, Password: keyhold.NewSecret([]byte(kvAdminPassword))}, nil))
	k.pages = openKVPages(t, e, upn, kvAdminPassword)
	resp, body := k.pages.post("/admin/vaults", url.Values{"subscription": {k.sub}, "group": {"rg-kv"}, "name": {"kv-http"}, "location": {"westus"}, "network": {"Enabled"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("create vault: %d %s", resp.StatusCode, body)
	}
	k.vaultPath = resp.Header.Get("Location")
	return k
}

// wantKVFieldError checks a 400 answer that shows msg next to the field.
func wantKVFieldError(t *testing.T, resp *http.Response, body, field, msg string, invalid bool) {
	t.Helper()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status = %d, want 400; body %s", resp.StatusCode, body)
	}
	if !strings.Contains(body, `id="`+field+`-error">`) {
		t.Fatalf("no message next to %s: %s", field, body)
	}
	got := body[strings.Index(body, `id="`+field+`-error">`):]
	got = got[:strings.Index(got, "</p>")]
	if !strings.Contains(got, msg) {
		t.Fatalf("message next to %s = %q, want it to contain %q", field, got, msg)
	}
	ref := `aria-describedby="` + field + `-error"`
	if invalid {
		ref = `aria-invalid="true" ` + ref
	}
	if !strings.Contains(body, ref) {
		t.Fatalf("the field %s is not marked with %s", field, ref)
	}
}

// TestVaultPagesRefuseBadInput posts every key vault form with bad input:
// each is answered 400 with the message next to its field, and nothing
// changes.
func TestVaultPagesRefuseBadInput(t *testing.T) {
	k := startKV(t)
	p := k.pages
	if _, err := k.kv.CreateKey(context.Background(), "kv-http", "cmk", client.KeyCreate{Kty: "RSA", KeySize: 2048}); err != nil {
		t.Fatal(err)
	}
	versions, err := k.kv.ListKeyVersions(context.Background(), "kv-http", "cmk")
	if err != nil || len(versions) != 1 {
		t.Fatalf("versions = %v, %v", versions, err)
	}
	version := versions[0].Version()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	goodPEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(priv)}))
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallPEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(small)}))
	pub, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	pubPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	encPEM := string(pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{0x30, 0}}))
	vault := func(extra url.Values) url.Values {
		f := url.Values{"subscription": {k.sub}, "group": {"rg-kv"}, "name": {"kv-other"}, "location": {"westus"}, "network": {"Enabled"}}
		for key, v := range extra {
			f[key] = v
		}
		return f
	}
	imp := func(name, material, kty, expires string) url.Values {
		return url.Values{"import-name": {name}, "material": {material}, "import-kty": {kty}, "import-expires": {expires}}
	}
	keyPath := k.vaultPath + "/keys/cmk/versions/" + version

	tests := []struct {
		name, path string
		form       url.Values
		field, msg string
		invalid    bool // the field is an input marked aria-invalid, not a fieldset
	}{
		{"vault name", "/admin/vaults", vault(url.Values{"name": {"1-bad name"}}), "name", "3 to 24", true},
		{"vault group", "/admin/vaults", vault(url.Values{"group": {"a/b"}}), "group", "resource group name", true},
		{"vault region", "/admin/vaults", vault(url.Values{"location": {""}}), "location", "Enter a region", true},
		{"vault network", "/admin/vaults", vault(url.Values{"network": {"Open"}}), "network", "Choose Enabled", false},
		{"vault IP rule", "/admin/vaults", vault(url.Values{"network": {"Selected"}, "iprules": {"203.0.113.0/24\n10.0.0.300"}}), "iprules", `&#34;10.0.0.300&#34; is not an IPv4 address`, true},
		{"vault IP rule host bits", "/admin/vaults", vault(url.Values{"network": {"Selected"}, "iprules": {"10.0.0.5/24"}}), "iprules", "the range is 10.0.0.0/24", true},
		{"vault selected without rules", "/admin/vaults", vault(url.Values{"network": {"Selected"}}), "iprules", "at least one IPv4", true},
		{"key name", k.vaultPath + "/keys", url.Values{"key": {"bad name"}, "kty": {"RSA"}, "size": {"2048"}}, "key", "1 to 127", true},
		{"key size", k.vaultPath + "/keys", url.Values{"key": {"k2"}, "kty": {"RSA"}, "size": {"1024"}}, "size", "2048, 3072 or 4096", true},
		{"key expiry", k.vaultPath + "/keys", url.Values{"key": {"k2"}, "kty": {"RSA"}, "size": {"2048"}, "expires": {"2001-01-01"}}, "expires", "in the future", true},
		{"import name", k.vaultPath + "/import", imp("bad name", goodPEM, "RSA", ""), "import-name", "1 to 127", true},
		{"import name taken", k.vaultPath + "/import", imp("cmk", goodPEM, "RSA", ""), "import-name", "already exists", true},
		{"import type", k.vaultPath + "/import", imp("k3", goodPEM, "EC", ""), "import-kty", "RSA or RSA-HSM", true},
		{"import HSM on a standard vault", k.vaultPath + "/import", imp("k3", goodPEM, "RSA-HSM", ""), "import-kty", "premium", true},
		{"import expiry", k.vaultPath + "/import", imp("k3", goodPEM, "RSA", "soon"), "import-expires", "YYYY-MM-DD", true},
		{"import nothing", k.vaultPath + "/import", imp("k3", "", "RSA", ""), "material", "Paste an RSA private key", true},
		{"import not a key", k.vaultPath + "/import", imp("k3", "hello", "RSA", ""), "material", "neither a PEM private key", true},
		{"import public key", k.vaultPath + "/import", imp("k3", pubPEM, "RSA", ""), "material", "public key", true},
		{"import encrypted", k.vaultPath + "/import", imp("k3", encPEM, "RSA", ""), "material", "Encrypted private keys are not supported", true},
		{"import RSA 1024", k.vaultPath + "/import", imp("k3", smallPEM, "RSA", ""), "material", "2048, 3072 or 4096", true},
		{"import JWK without private part", k.vaultPath + "/import", imp("k3", `{"kty":"RSA","n":"`+b64url(priv.N)+`","e":"AQAB"}`, "RSA", ""), "material", "only the public key", true},
		{"network mode", k.vaultPath + "/network", url.Values{"network": {"Sometimes"}}, "network", "Choose Enabled", false},
		{"network IP rule", k.vaultPath + "/network", url.Values{"network": {"Selected"}, "iprules": {"2001:db8::1"}}, "iprules", "IPv6", true},
		{"network without rules", k.vaultPath + "/network", url.Values{"network": {"Selected"}, "iprules": {" "}}, "iprules", "at least one IPv4", true},
		{"access object", k.vaultPath + "/access", url.Values{"object": {"someone"}, "preset": {"cmk"}}, "object", "GUID", true},
		{"access permissions", k.vaultPath + "/access", url.Values{"object": {k.kvID}, "preset": {"custom"}}, "perm", "at least one key permission", false},
		{"version expiry format", keyPath, url.Values{"action": {"expiry"}, "expires": {"31/12/2030"}}, "expires-" + version, "YYYY-MM-DD", true},
		{"version expiry past", keyPath, url.Values{"action": {"expiry"}, "expires": {"2001-01-01"}}, "expires-" + version, "in the future", true},
		{"version expiry empty", keyPath, url.Values{"action": {"expiry"}, "expires": {""}}, "expires-" + version, "Clear expiry", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := p.post(tt.path, tt.form)
			wantKVFieldError(t, resp, body, tt.field, tt.msg, tt.invalid)
		})
	}

	// Nothing was made or changed.
	if vs, err := k.kv.ListVaults(context.Background(), k.sub, ""); err != nil || len(vs) != 1 {
		t.Errorf("vaults = %d, %v; want only kv-http", len(vs), err)
	}
	if keys, err := k.kv.ListKeys(context.Background(), "kv-http"); err != nil || len(keys) != 1 {
		t.Errorf("keys = %d, %v; want only cmk", len(keys), err)
	}
	v, err := k.kv.GetVault(context.Background(), k.sub, "rg-kv", "kv-http")
	if err != nil {
		t.Fatal(err)
	}
	if acl := v.Properties.NetworkACLs; acl != nil && acl.DefaultAction == "Deny" {
		t.Errorf("the firewall changed: %+v", acl)
	}
	if body := strings.Join(p.bodies, "\n"); strings.Contains(body, pemMiddle(goodPEM)) || strings.Contains(body, pemMiddle(smallPEM)) {
		t.Error("a refused import showed the key material again")
	}
}

func b64url(n *big.Int) string { return base64.RawURLEncoding.EncodeToString(n.Bytes()) }

// pemMiddle is a distinctive piece of a PEM key's body.
func pemMiddle(p string) string {
	lines := strings.Split(strings.TrimSpace(p), "\n")
	return lines[len(lines)/2]
}

// TestKeyImport imports RSA keys as PEM PKCS#1 (pasted), PEM PKCS#8 (a file)
// and JWK (pasted) of each size the vault takes; each becomes a key whose
// private part unwraps what its public part wrapped here, and the material
// never appears in a page nor in the server's log.
func TestKeyImport(t *testing.T) {
	k := startKV(t, testenv.WithCapturedLogs())
	p := k.pages
	ctx := context.Background()
	tests := []struct {
		name, format string
		bits         int
	}{
		{"pkcs1", "pkcs1", 2048},
		{"pkcs8-file", "pkcs8-file", 3072},
		{"jwk", "jwk", 2048},
		{"jwk-4096", "jwk", 4096},
	}
	var secrets []string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			priv, err := rsa.GenerateKey(rand.Reader, tt.bits)
			if err != nil {
				t.Fatal(err)
			}
			form := url.Values{"import-name": {tt.name}, "import-kty": {"RSA"}, "import-expires": {time.Now().AddDate(1, 0, 0).Format("2006-01-02")}}
			var resp *http.Response
			var body string
			switch tt.format {
			case "pkcs1":
				material := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(priv)}))
				secrets = append(secrets, pemMiddle(material))
				form.Set("material", material)
				resp, body = p.post(k.vaultPath+"/import", form)
			case "pkcs8-file":
				der, err := x509.MarshalPKCS8PrivateKey(priv)
				if err != nil {
					t.Fatal(err)
				}
				material := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
				secrets = append(secrets, pemMiddle(string(material)))
				resp, body = p.postFile(k.vaultPath+"/import", form, material)
			case "jwk":
				j, _ := json.Marshal(map[string]string{"kty": "RSA", "n": b64url(priv.N), "e": b64url(big.NewInt(int64(priv.E))),
					"d": b64url(priv.D), "p": b64url(priv.Primes[0]), "q": b64url(priv.Primes[1])})
				secrets = append(secrets, b64url(priv.D)[:40], b64url(priv.Primes[0])[:40])
				form.Set("material", string(j))
				resp, body = p.post(k.vaultPath+"/import", form)
			}
			if resp.StatusCode != http.StatusSeeOther || !strings.HasSuffix(resp.Header.Get("Location"), "/keys/"+tt.name) {
				t.Fatalf("import = %d to %q: %s", resp.StatusCode, resp.Header.Get("Location"), body)
			}
			if got := p.flash(resp); !strings.Contains(got, "imported") || !strings.Contains(got, big.NewInt(int64(tt.bits)).String()) {
				t.Errorf("flash = %q", got)
			}
			kb, err := k.kv.GetKey(ctx, "kv-http", tt.name, "")
			if err != nil {
				t.Fatal(err)
			}
			if kb.Key.N != b64url(priv.N) || kb.Attributes.Expires == nil {
				t.Fatalf("the vault's key is not the imported one, or has no expiry: %+v", kb.Attributes)
			}
			secret := []byte("a root key of 32 bytes, say....")
			wrapped, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, &priv.PublicKey, secret, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := k.kv.UnwrapKey(ctx, "kv-http", tt.name, "", "RSA-OAEP-256", wrapped)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Value, secret) {
				t.Fatal("the imported key does not unwrap what its public part wrapped")
			}
		})
	}
	// A refused import (the name is taken) with good material comes back
	// with the key field empty.
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	material := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(priv)}))
	secrets = append(secrets, pemMiddle(material))
	resp, body := p.post(k.vaultPath+"/import", url.Values{"import-name": {"pkcs1"}, "import-kty": {"RSA"}, "material": {material}})
	wantKVFieldError(t, resp, body, "import-name", "already exists", true)
	p.get(k.vaultPath)
	p.get(k.vaultPath + "/keys/jwk")

	all, logs := strings.Join(p.bodies, "\n"), k.e.Logs.String()
	for _, s := range secrets {
		if strings.Contains(all, s) {
			t.Errorf("a page holds key material %q…", s[:8])
		}
		if strings.Contains(logs, s) {
			t.Errorf("the server's log holds key material %q…", s[:8])
		}
	}
}

// TestVaultPagesShowRefusals shows a user without rights on a vault the
// API's refusal, never a server error: one with no role at all is refused
// the vault, one with Reader sees it but is refused its keys.
func TestVaultPagesShowRefusals(t *testing.T) {
	k := startKV(t)
	ctx := context.Background()
	if _, err := k.kv.CreateKey(ctx, "kv-http", "cmk", client.KeyCreate{Kty: "RSA", KeySize: 2048}); err != nil {
		t.Fatal(err)
	}
	const password = "Someone-password-42!"
	_, nobodyUPN := k.e.CreateUser("nobody", password)
	readerID, readerUPN := k.e.CreateUser("reader", password)
	if _, err := k.sp.CreateRoleAssignment(ctx, "/subscriptions/"+k.sub+"/resourceGroups/rg-kv", "/subscriptions/"+k.sub+"/providers/Microsoft.Authorization/roleDefinitions/"+readerRoleID, readerID, "User"); err != nil {
		t.Fatal(err)
	}
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	material := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(priv)}))
	imp := url.Values{"import-name": {"mine"}, "import-kty": {"RSA"}, "material": {material}}

	nobody := openKVPages(t, k.e, nobodyUPN, password)
	reader := openKVPages(t, k.e, readerUPN, password)
	tests := []struct {
		name       string
		p          *kvPages
		method     string
		path       string
		form       url.Values
		wantStatus int
		wantIn     string
	}{
		{"vault page", nobody, "GET", k.vaultPath, nil, http.StatusForbidden, "You don&#39;t have access"},
		{"key page", nobody, "GET", k.vaultPath + "/keys/cmk", nil, http.StatusForbidden, "You don&#39;t have access"},
		{"import", nobody, "POST", k.vaultPath + "/import", imp, http.StatusForbidden, "You don&#39;t have access"},
		{"networking", nobody, "POST", k.vaultPath + "/network", url.Values{"network": {"Enabled"}}, http.StatusForbidden, "You don&#39;t have access"},
		{"delete", nobody, "POST", k.vaultPath + "/delete", url.Values{"confirm": {"yes"}}, http.StatusForbidden, "You don&#39;t have access"},
		{"remove access", nobody, "POST", k.vaultPath + "/access/remove", url.Values{"object": {k.kvID}, "confirm": {"yes"}}, http.StatusForbidden, "You don&#39;t have access"},
		{"vault list without the vault", nobody, "GET", "/admin/vaults", nil, http.StatusOK, "No key vaults you can read"},
		{"reader sees the vault, not its keys", reader, "GET", k.vaultPath, nil, http.StatusOK, `id="keys-error"`},
		{"reader import refused next to the name", reader, "POST", k.vaultPath + "/import", imp, http.StatusForbidden, `id="import-name-error"`},
		{"reader key page", reader, "GET", k.vaultPath + "/keys/cmk", nil, http.StatusForbidden, "You don&#39;t have access"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var resp *http.Response
			var body string
			if tt.method == "GET" {
				resp, body = tt.p.get(tt.path)
			} else {
				resp, body = tt.p.post(tt.path, tt.form)
			}
			if resp.StatusCode != tt.wantStatus || !strings.Contains(body, tt.wantIn) {
				t.Fatalf("%s %s = %d, want %d with %q; body %s", tt.method, tt.path, resp.StatusCode, tt.wantStatus, tt.wantIn, body)
			}
			if strings.Contains(body, "Something went wrong") || strings.Contains(body, pemMiddle(material)) {
				t.Fatalf("the answer is a server error or shows the key: %s", body)
			}
		})
	}
	if _, err := k.kv.GetVault(ctx, k.sub, "rg-kv", "kv-http"); err != nil {
		t.Fatalf("the vault is gone after refused deletes: %v", err)
	}
	if v, _ := k.kv.GetVault(ctx, k.sub, "rg-kv", "kv-http"); len(v.Properties.AccessPolicies) != 1 {
		t.Fatalf("access policies = %+v, want the creator's", v.Properties.AccessPolicies)
	}
}

// TestVaultPagesAskFirst shows that each change that can lock environments
// (restricting the network, disabling a key version, removing an access
// policy, deleting the vault) is a confirmation page first and happens only
// once confirmed; and that the deleted vault is listed and recovers.
func TestVaultPagesAskFirst(t *testing.T) {
	k := startKV(t)
	p, ctx := k.pages, context.Background()
	if _, err := k.kv.CreateKey(ctx, "kv-http", "cmk", client.KeyCreate{Kty: "RSA", KeySize: 2048}); err != nil {
		t.Fatal(err)
	}
	other, _ := k.e.CreateUser("other", "Other-password-42!")
	if err := k.kv.UpdateAccessPolicies(ctx, k.sub, "rg-kv", "kv-http", client.AccessPolicyAdd, []client.VaultAccessPolicy{{TenantID: k.e.Boot.TenantID, ObjectID: other,
		Permissions: client.VaultPermissions{Keys: []string{"get", "wrapKey", "unwrapKey"}}}}); err != nil {
		t.Fatal(err)
	}
	vault := func() *client.Vault {
		v, err := k.kv.GetVault(ctx, k.sub, "rg-kv", "kv-http")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	// Rotate, so the key has two versions, then disable the older one.
	if resp, body := p.post(k.vaultPath+"/keys/cmk/rotate", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("new version: %d %s", resp.StatusCode, body)
	}
	vs, err := k.kv.ListKeyVersions(ctx, "kv-http", "cmk")
	if err != nil || len(vs) != 2 {
		t.Fatalf("versions after rotate = %d, %v", len(vs), err)
	}
	_, page := p.get(k.vaultPath + "/keys/cmk")
	for _, v := range vs {
		if !strings.Contains(page, `id="version-`+v.Version()+`"`) {
			t.Fatalf("the key page does not list version %s", v.Version())
		}
	}
	v, err := k.kv.GetVault(ctx, k.sub, "rg-kv", "kv-http")
	if err != nil {
		t.Fatal(err)
	}
	if kid := v.Properties.VaultURI + "keys/cmk"; !strings.Contains(page, `id="kid" type="text" readonly value="`+kid+`"`) {
		t.Fatalf("the key page does not show the kid %s: %s", kid, page)
	}
	first := vs[0]
	enabled := func() bool {
		kb, err := k.kv.GetKey(ctx, "kv-http", "cmk", first.Version())
		if err != nil {
			t.Fatal(err)
		}
		return *kb.Attributes.Enabled
	}

	type step struct {
		name      string
		path      string
		form      url.Values
		wantTitle string
		changed   func() bool
	}
	steps := []step{
		{"restrict network", k.vaultPath + "/network", url.Values{"network": {"Selected"}, "iprules": {"127.0.0.1\n203.0.113.0/24"}, "bypass": {"on"}},
			"Restrict network access to kv-http", func() bool {
				acl := vault().Properties.NetworkACLs
				return acl != nil && acl.DefaultAction == "Deny" && len(acl.IPRules) == 2
			}},
		{"disable version", k.vaultPath + "/keys/cmk/versions/" + first.Version(), url.Values{"action": {"disable"}},
			"Disable version " + first.Version() + " of key cmk", func() bool { return !enabled() }},
		{"remove access policy", k.vaultPath + "/access/remove", url.Values{"object": {other}},
			"Remove access policy", func() bool { return len(vault().Properties.AccessPolicies) == 1 }},
		{"delete vault", k.vaultPath + "/delete", nil, "Delete vault kv-http", func() bool {
			_, err := k.kv.GetVault(ctx, k.sub, "rg-kv", "kv-http")
			return client.IsNotFound(err)
		}},
	}
	for _, st := range steps {
		resp, body := p.post(st.path, st.form)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "<h1>"+st.wantTitle+"</h1>") || !strings.Contains(body, `id="confirm"`) {
			t.Fatalf("%s without confirmation = %d: %s", st.name, resp.StatusCode, body)
		}
		if st.changed() {
			t.Fatalf("%s happened before it was confirmed", st.name)
		}
		form := url.Values{"confirm": {"yes"}}
		for k, v := range st.form {
			form[k] = v
		}
		resp, body = p.post(st.path, form)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("confirmed %s = %d: %s", st.name, resp.StatusCode, body)
		}
		if msg := p.flash(resp); strings.HasPrefix(msg, "Refused") {
			t.Fatalf("confirmed %s: %s", st.name, msg)
		}
		if !st.changed() {
			t.Fatalf("%s did not happen once confirmed", st.name)
		}
	}

	// The deleted vault is listed with its dates and recovers with its keys.
	_, list := p.get("/admin/vaults")
	if !strings.Contains(list, "Deleted vaults") || !strings.Contains(list, `aria-label="Recover vault kv-http"`) {
		t.Fatalf("the vaults page does not list the deleted vault: %s", list)
	}
	resp, _ := p.post("/admin/vaults/recover", url.Values{"subscription": {k.sub}, "name": {"kv-http"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != k.vaultPath {
		t.Fatalf("recover = %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if msg := p.flash(resp); !strings.Contains(msg, "recovered") {
		t.Fatalf("flash after recover = %q", msg)
	}
	if keys, err := k.kv.ListKeys(ctx, "kv-http"); err != nil || len(keys) != 1 {
		t.Fatalf("keys after recovery = %d, %v", len(keys), err)
	}
}
