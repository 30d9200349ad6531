package keyvault_test

import (
	"bytes"
	"context"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/keyhold/keyhold/identity"
	"github.com/keyhold/keyhold/internal/testenv"
)

const testVaultDomain = "vault.keyhold.test"

var versionRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// TestAzkeysHostStyle runs the real azkeys client against a host-style vault
// URL (https://<vault>.vault.keyhold.test:<port>/) as it runs against
// *.vault.azure.net: the test's transport dials the server for every host
// below the vault domain (recipe B), TLS verifies the host against the
// certificate's *.vault.keyhold.test, and challenge resource verification
// stays on. azkeys' own ID.Name and ID.Version read the kids.
func TestAzkeysHostStyle(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and generates RSA keys")
	}
	e := newE2E(t, testenv.WithVaultDomain(testVaultDomain))
	ctx := context.Background()
	pathURL := e.createVault(t, "kv-host", nil)
	u, _ := url.Parse(e.Server.URL())
	wantURI := "https://kv-host." + testVaultDomain + ":" + u.Port() + "/"

	// armkeyvault reads the host-style vaultUri.
	vaults, err := armkeyvault.NewVaultsClient(e.Boot.SubscriptionID, e.ServicePrincipal(), e.ARMOptions())
	if err != nil {
		t.Fatal(err)
	}
	v, err := vaults.Get(ctx, "rg-kv", "kv-host", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := *v.Properties.VaultURI; got != wantURI {
		t.Fatalf("vaultUri = %s, want %s", got, wantURI)
	}

	cnt := &counter{next: e.HTTP.Transport, hostSuffix: "." + testVaultDomain}
	opts := e.ClientOptions()
	opts.Transport = cnt
	opts.Retry = policy.RetryOptions{MaxRetries: -1}
	cred, err := azidentity.NewClientSecretCredential(e.Boot.TenantID, e.Boot.ClientID, e.Boot.ClientSecret,
		&azidentity.ClientSecretCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	// No DisableChallengeResourceVerification: the challenge's resource is
	// https://vault.keyhold.test:<port>, of which the vault's host is a
	// subdomain.
	c, err := azkeys.NewClient(*v.Properties.VaultURI, cred, &azkeys.ClientOptions{ClientOptions: opts})
	if err != nil {
		t.Fatal(err)
	}

	created, err := c.CreateKey(ctx, "cmk", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](2048)}, nil)
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	v1 := created.Key.KID.Version()
	got, err := c.GetKey(ctx, "cmk", "", nil)
	if err != nil {
		t.Fatalf("GetKey: %v", err)
	}
	rotated, err := c.RotateKey(ctx, "cmk", nil)
	if err != nil {
		t.Fatalf("RotateKey: %v", err)
	}
	v2 := rotated.Key.KID.Version()
	byVersion, err := c.GetKey(ctx, "cmk", v1, nil)
	if err != nil {
		t.Fatalf("GetKey by version: %v", err)
	}
	for _, tc := range []struct {
		what        string
		kid         *azkeys.ID
		wantVersion string
	}{
		{"create", created.Key.KID, v1},
		{"get latest", got.Key.KID, v1},
		{"rotate", rotated.Key.KID, v2},
		{"get by version", byVersion.Key.KID, v1},
	} {
		if !strings.HasPrefix(string(*tc.kid), wantURI+"keys/cmk/") {
			t.Errorf("%s: kid %s is not under %s", tc.what, *tc.kid, wantURI)
		}
		if tc.kid.Name() != "cmk" || tc.kid.Version() != tc.wantVersion || !versionRE.MatchString(tc.kid.Version()) {
			t.Errorf("%s: ID.Name, ID.Version = %q, %q; want cmk, %q", tc.what, tc.kid.Name(), tc.kid.Version(), tc.wantVersion)
		}
	}
	if v1 == v2 {
		t.Errorf("rotate kept version %s", v1)
	}

	// Wrap with the latest version, unwrap by the version the kid names.
	cek := bytes.Repeat([]byte{9}, 32)
	w, err := c.WrapKey(ctx, "cmk", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: cek}, nil)
	if err != nil {
		t.Fatalf("WrapKey: %v", err)
	}
	if w.KID.Name() != "cmk" || w.KID.Version() != v2 {
		t.Errorf("wrap kid %s: Name, Version = %q, %q", *w.KID, w.KID.Name(), w.KID.Version())
	}
	uw, err := c.UnwrapKey(ctx, w.KID.Name(), w.KID.Version(), azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: w.Result}, nil)
	if err != nil || !bytes.Equal(uw.Result, cek) {
		t.Fatalf("UnwrapKey: %v", err)
	}
	pager := c.NewListKeyPropertiesPager(nil)
	var names []string
	for pager.More() {
		p, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range p.Value {
			names = append(names, k.KID.Name()+"@"+k.KID.Version())
		}
	}
	if len(names) != 1 || names[0] != "cmk@" {
		t.Errorf("listed %v, want [cmk@] (versionless)", names)
	}
	// One challenge for the client's first call, none after.
	if got := cnt.challenges.Load(); got != 1 {
		t.Errorf("%d challenges, want 1", got)
	}

	// Path-style URLs keep working beside host-style ones, with kids of
	// their own form, for a token of either audience.
	hostTok := e.token(t, e.sp, keyvaultHostAudience(e))
	for _, tok := range []string{e.token(t, e.sp, identity.AudienceVault), hostTok} {
		r := must(t, e.do(t, "GET", pathURL+"/keys/cmk?api-version=7.6", tok, nil), 200)
		if kid := r.json(t)["key"].(map[string]any)["kid"].(string); !strings.HasPrefix(kid, pathURL+"/keys/cmk/") {
			t.Errorf("path-style kid %s", kid)
		}
	}
	// The vault audience works host-style too; host names are
	// case-insensitive.
	upper := "https://KV-HOST.Vault.Keyhold.Test:" + u.Port() + "/keys/cmk?api-version=7.6"
	must(t, e.do(t, "GET", upper, e.token(t, e.sp, identity.AudienceVault), nil), 200)
}

// keyvaultHostAudience is the resource a host-style challenge names.
func keyvaultHostAudience(e *e2eEnv) string { return e.Server.Vault().HostAudience() }

// TestHostStyleChallengeAndRefusals checks the raw answers on host-style
// URLs: the challenge names the vault domain's resource, an unknown vault is
// the data plane's 404, and paths of other surfaces on a vault's host stay
// the vault's.
func TestHostStyleChallengeAndRefusals(t *testing.T) {
	e := newE2E(t, testenv.WithVaultDomain(testVaultDomain))
	e.createVault(t, "kv-refuse", nil)
	u, _ := url.Parse(e.Server.URL())
	host := func(vault string) string { return "https://" + vault + "." + testVaultDomain + ":" + u.Port() }
	wantResource := "https://" + testVaultDomain + ":" + u.Port()
	if got := keyvaultHostAudience(e); got != wantResource {
		t.Fatalf("HostAudience = %s, want %s", got, wantResource)
	}
	vaultTok := e.token(t, e.sp, identity.AudienceVault)
	armTok := e.token(t, e.sp, identity.AudienceManagement)
	sub := e.Boot.SubscriptionID

	tests := []struct {
		name, method, url, token string
		status                   int
		code                     string
	}{
		{"no token", "GET", host("kv-refuse") + "/keys?api-version=7.6", "", 401, "Unauthorized"},
		{"unknown vault", "GET", host("nosuchvault") + "/keys?api-version=7.6", vaultTok, 404, "VaultNotFound"},
		{"unknown vault, no token", "GET", host("nosuchvault") + "/keys?api-version=7.6", "", 401, "Unauthorized"},
		{"not a vault name", "GET", host("x") + "/keys?api-version=7.6", vaultTok, 404, "VaultNotFound"},
		{"path-style path on a vault host", "GET", host("kv-refuse") + "/vaults/kv-refuse/keys?api-version=7.6", vaultTok, 404, "NotFound"},
		{"resource manager path, its token", "GET", host("kv-refuse") + "/subscriptions/" + sub + "/resourcegroups?api-version=2021-04-01", armTok, 401, "Unauthorized"},
		{"resource manager path, vault token", "GET", host("kv-refuse") + "/subscriptions/" + sub + "/resourcegroups?api-version=7.6", vaultTok, 404, "NotFound"},
		{"resource manager api-version", "GET", host("kv-refuse") + "/subscriptions/" + sub + "/resourcegroups?api-version=2021-04-01", vaultTok, 400, "BadParameter"},
		{"health path", "GET", host("nosuchvault") + "/healthz", "", 401, "Unauthorized"},
		{"admin pages", "GET", host("kv-refuse") + "/admin/", "", 401, "Unauthorized"},
		{"identity metadata", "GET", host("kv-refuse") + "/" + e.Boot.TenantID + "/v2.0/.well-known/openid-configuration?api-version=7.6", vaultTok, 404, "NotFound"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, tt.method, tt.url, tt.token, nil)
			code, _ := r.errorCodes(t)
			if r.status != tt.status || code != tt.code || r.header.Get("x-ms-error-code") != tt.code {
				t.Fatalf("%d %s (x-ms-error-code %s), want %d %s: %s", r.status, code, r.header.Get("x-ms-error-code"), tt.status, tt.code, r.body)
			}
			if tt.status == 401 {
				want := `Bearer authorization="` + e.Server.URL() + e.Boot.TenantID + `", resource="` + wantResource + `"`
				if got := r.header.Get("WWW-Authenticate"); got != want {
					t.Errorf("WWW-Authenticate = %s, want %s", got, want)
				}
			}
		})
	}
}
