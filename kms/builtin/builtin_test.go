package builtin_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/envelope"
	"github.com/keyhold/keyhold/internal/unitenv"
	"github.com/keyhold/keyhold/keyvault"
	"github.com/keyhold/keyhold/keyvault/keycrypto"
	"github.com/keyhold/keyhold/kms"
	"github.com/keyhold/keyhold/kms/builtin"
	"github.com/keyhold/keyhold/kms/kmstest"
	"github.com/keyhold/keyhold/rbac"
	"github.com/keyhold/keyhold/seal"
)

const (
	tenant   = "6f1a3c1e-8c47-4b0c-9d1e-2b4a5c6d7e8f"
	sub      = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"
	ownerOID = "11111111-1111-4111-8111-111111111111"
	miOID    = "3f2a9c1e-5555-4555-8555-555555555555"
	policyID = "/subscriptions/" + sub + "/resourceGroups/rg-ep/providers/Microsoft.PowerPlatform/enterprisePolicies/ep-contoso"
	vaultID  = "/subscriptions/" + sub + "/resourceGroups/rg-kv/providers/Microsoft.KeyVault/vaults/kv-cmk"
)

// env is a real SQLite store with the vault service and the driver over it.
type env struct {
	t     *testing.T
	store keyhold.Store
	seal  *seal.Key
	vault *keyvault.Service
	drv   *builtin.Driver
	clock *unitenv.Clock
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	st := unitenv.SQLite(t, "kms.db")
	sk, err := seal.NewKey(seal.GenerateMasterKey())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: st, seal: sk, clock: unitenv.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))}
	e.vault = keyvault.New(keyvault.Config{Store: st, Seal: sk, Authz: rbac.New(st), PublicURL: "https://kv.test/", Now: e.clock.Now})
	e.drv = builtin.New(builtin.Config{Store: st, Vault: e.vault, Seal: sk, Now: e.clock.Now})
	if err := st.CreateTenant(ctx, &keyhold.Tenant{ID: tenant, DisplayName: "Contoso", DefaultDomain: "contoso.test", CreatedAt: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	mi := &keyhold.Principal{ID: miOID, TenantID: tenant, Type: keyhold.PrincipalManagedIdentity, DisplayName: "ep-contoso",
		AppID: "app-3f2a9c1e", ResourceID: policyID, CreatedAt: e.clock.Now()}
	if err := st.CreatePrincipal(ctx, mi); err != nil {
		t.Fatal(err)
	}
	return e
}

// putVault stores the vault resource as the management plane would: the
// owner holds every key permission, and mod adds the case's settings.
func (e *env) putVault(mod func(*keyvault.Properties)) {
	e.t.Helper()
	yes, days := true, 90
	p := keyvault.Properties{TenantID: tenant, SKU: keyvault.SKU{Family: "A", Name: "standard"},
		AccessPolicies:   []keyvault.AccessPolicy{{TenantID: tenant, ObjectID: ownerOID, Permissions: keyvault.Permissions{Keys: []string{"all"}}}},
		EnableSoftDelete: &yes, SoftDeleteRetentionInDays: &days, EnablePurgeProtection: &yes}
	if mod != nil {
		mod(&p)
	}
	raw, err := json.Marshal(p)
	if err != nil {
		e.t.Fatal(err)
	}
	r := &keyhold.Resource{ID: vaultID, SubscriptionID: sub, ResourceGroup: "rg-kv", Type: keyvault.ResourceType,
		Name: "kv-cmk", Location: "westus", Properties: raw}
	if err := e.store.PutResource(context.Background(), r); err != nil {
		e.t.Fatal(err)
	}
}

// call sends a data-plane request as the vault owner and returns the status
// and the decoded body.
func (e *env) call(method, path, body string) (int, map[string]any) {
	e.t.Helper()
	r := httptest.NewRequest(method, "https://kv.test"+path+"?api-version=7.6", strings.NewReader(body))
	r.RemoteAddr = "192.0.2.10:5555"
	c := &keyhold.Caller{Principal: &keyhold.Principal{ID: ownerOID, TenantID: tenant, Type: keyhold.PrincipalUser}, TenantID: tenant}
	r = r.WithContext(keyhold.WithCaller(r.Context(), c))
	w := httptest.NewRecorder()
	e.vault.Handler().ServeHTTP(w, r)
	var m map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &m)
	return w.Code, m
}

// createKey creates an RSA key through the data plane and returns its version.
func (e *env) createKey(name, body string) string {
	e.t.Helper()
	if body == "" {
		body = `{"kty":"RSA","key_size":2048}`
	}
	code, m := e.call("POST", "/vaults/kv-cmk/keys/"+name+"/create", body)
	if code != 200 {
		e.t.Fatalf("create key %s: %d %v", name, code, m)
	}
	kid := m["key"].(map[string]any)["kid"].(string)
	return kid[strings.LastIndex(kid, "/")+1:]
}

func (e *env) patchKey(name, body string) {
	e.t.Helper()
	if code, m := e.call("PATCH", "/vaults/kv-cmk/keys/"+name, body); code != 200 {
		e.t.Fatalf("patch key %s: %d %v", name, code, m)
	}
}

func (e *env) assignCryptoUser(name string) {
	e.t.Helper()
	def, _ := rbac.RoleByName(rbac.RoleKeyVaultCryptoServiceEncryptionUser)
	a := &keyhold.RoleAssignment{Name: name, TenantID: tenant, Scope: vaultID, RoleDefinitionID: def.ID,
		PrincipalID: miOID, PrincipalType: keyhold.PrincipalServicePrincipal, CreatedAt: e.clock.Now(), UpdatedAt: e.clock.Now()}
	if err := e.store.CreateRoleAssignment(context.Background(), a); err != nil {
		e.t.Fatal(err)
	}
}

func customerRef(key string) keyhold.WrapRef {
	return keyhold.WrapRef{Kind: keyhold.WrapCustomer, PolicyID: policyID, VaultID: vaultID, KeyName: key}
}

func grantMI(perms ...string) func(*keyvault.Properties) {
	return func(p *keyvault.Properties) {
		p.AccessPolicies = append(p.AccessPolicies, keyvault.AccessPolicy{TenantID: tenant, ObjectID: miOID,
			Permissions: keyvault.Permissions{Keys: perms}})
	}
}

func TestConformanceCustomerAccessPolicy(t *testing.T) {
	t.Parallel()
	kmstest.Run(t, func(t *testing.T) *kmstest.Fixture {
		e := newEnv(t)
		e.putVault(grantMI("get", "wrapKey", "unwrapKey"))
		e.createKey("cmk", "")
		e.createKey("cmk2", "")
		return &kmstest.Fixture{Wrapper: e.drv, Ref: customerRef("cmk"), Other: customerRef("cmk2"),
			Deny: func(t *testing.T) { e.patchKey("cmk", `{"attributes":{"enabled":false}}`) },
			Cut:  func(*testing.T) { e.store.Close() }}
	})
}

func TestConformanceCustomerRBAC(t *testing.T) {
	t.Parallel()
	kmstest.Run(t, func(t *testing.T) *kmstest.Fixture {
		e := newEnv(t)
		// The owner makes the keys under its access policy, then the vault
		// switches to RBAC, where only the identity's role counts.
		e.putVault(nil)
		e.createKey("cmk", "")
		e.createKey("cmk2", "")
		e.putVault(func(p *keyvault.Properties) { yes := true; p.EnableRbacAuthorization = &yes })
		e.assignCryptoUser("a1b2c3d4-0000-4000-8000-000000000001")
		return &kmstest.Fixture{Wrapper: e.drv, Ref: customerRef("cmk"), Other: customerRef("cmk2"),
			Deny: func(t *testing.T) {
				if err := e.store.DeleteRoleAssignment(context.Background(), "a1b2c3d4-0000-4000-8000-000000000001"); err != nil {
					t.Fatal(err)
				}
			}}
	})
}

func disableSystemKey(t *testing.T, e *env, ref keyhold.WrapRef) {
	v, err := e.store.GetKeyVersion(context.Background(), builtin.SystemVault, ref.KeyName, "")
	if err != nil {
		t.Fatal(err)
	}
	v.Enabled = false
	if err := e.store.UpdateKeyVersion(context.Background(), v); err != nil {
		t.Fatal(err)
	}
}

// platformKey is the platform key of the first fixture, copied into the
// stores of the others (with the same master key): RSA-3072 generation is
// slow under -race, and each fixture still gets a store of its own.
var platformKey struct {
	sync.Mutex
	v    *keyhold.KeyVersion
	seal *seal.Key
}

func TestConformancePlatform(t *testing.T) {
	t.Parallel()
	kmstest.Run(t, func(t *testing.T) *kmstest.Fixture {
		e := newEnv(t)
		ctx := context.Background()
		platformKey.Lock()
		if platformKey.v == nil {
			if _, err := builtin.EnsurePlatformKey(ctx, e.store, e.seal); err != nil {
				platformKey.Unlock()
				t.Fatal(err)
			}
			v, err := e.store.GetKeyVersion(ctx, builtin.SystemVault, builtin.PlatformKeyName, "")
			if err != nil {
				platformKey.Unlock()
				t.Fatal(err)
			}
			platformKey.v, platformKey.seal = v, e.seal
		} else {
			v := *platformKey.v
			if err := e.store.CreateKeyVersion(ctx, &v); err != nil {
				platformKey.Unlock()
				t.Fatal(err)
			}
		}
		e.seal = platformKey.seal
		platformKey.Unlock()
		e.drv = builtin.New(builtin.Config{Store: e.store, Vault: e.vault, Seal: e.seal, Now: e.clock.Now})
		ref, err := builtin.EnsurePlatformKey(ctx, e.store, e.seal)
		if err != nil || ref.KeyVersion != platformKey.v.Version {
			t.Fatalf("EnsurePlatformKey = %+v, %v; want the stored version", ref, err)
		}
		ref.KeyVersion = "" // the newest
		other, err := e.drv.ImportBYOK(ctx, tenant, rsaJWK(t))
		if err != nil {
			t.Fatal(err)
		}
		return &kmstest.Fixture{Wrapper: e.drv, Ref: ref, Other: other, Deny: func(t *testing.T) { disableSystemKey(t, e, ref) },
			Cut: func(*testing.T) { e.store.Close() }}
	})
}

func TestConformanceBYOK(t *testing.T) {
	t.Parallel()
	kmstest.Run(t, func(t *testing.T) *kmstest.Fixture {
		e := newEnv(t)
		ref, err := e.drv.ImportBYOK(context.Background(), tenant, rsaJWK(t))
		if err != nil {
			t.Fatal(err)
		}
		other, err := e.drv.ImportBYOK(context.Background(), "7a1a3c1e-8c47-4b0c-9d1e-2b4a5c6d7e8f", rsaJWK(t))
		if err != nil {
			t.Fatal(err)
		}
		return &kmstest.Fixture{Wrapper: e.drv, Ref: builtin.BYOKRef(tenant), Other: other,
			Deny: func(t *testing.T) { disableSystemKey(t, e, ref) }}
	})
}

var (
	rsaOnce sync.Once
	rsaKeys []*rsa.PrivateKey
)

// rsaJWK returns a JWK of a test RSA-2048 key, a different one each call
// (from a small pool, generated once: generation is slow under -race).
func rsaJWK(t *testing.T) keycrypto.JWK {
	t.Helper()
	rsaOnce.Do(func() {
		for i := 0; i < 4; i++ {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			rsaKeys = append(rsaKeys, k)
		}
	})
	rsaMu.Lock()
	k := rsaKeys[rsaNext%len(rsaKeys)]
	rsaNext++
	rsaMu.Unlock()
	b := func(i *big.Int) keycrypto.Bytes { return i.Bytes() }
	return keycrypto.JWK{Kty: keycrypto.KtyRSA, N: b(k.N), E: b(big.NewInt(int64(k.E))), D: b(k.D),
		P: b(k.Primes[0]), Q: b(k.Primes[1])}
}

var (
	rsaMu   sync.Mutex
	rsaNext int
)

// TestCustomerKeyAccess: what the customer does to the vault, the key and
// the policy decides what the platform gets, classified as kms promises.
func TestCustomerKeyAccess(t *testing.T) {
	t.Parallel()
	wrapUnwrap := grantMI("get", "wrapKey", "unwrapKey")
	closed := func(p *keyvault.Properties) { p.PublicNetworkAccess = "Disabled" }
	denyBypass := func(p *keyvault.Properties) {
		p.NetworkACLs = &keyvault.NetworkRuleSet{DefaultAction: "Deny", Bypass: "AzureServices"}
	}
	denyNoBypass := func(p *keyvault.Properties) {
		p.NetworkACLs = &keyvault.NetworkRuleSet{DefaultAction: "Deny", Bypass: "None", IPRules: []keyvault.IPRule{{Value: "0.0.0.0/0"}}}
	}
	both := func(fs ...func(*keyvault.Properties)) func(*keyvault.Properties) {
		return func(p *keyvault.Properties) {
			for _, f := range fs {
				f(p)
			}
		}
	}
	tests := []struct {
		name  string
		vault func(*keyvault.Properties)
		setup func(t *testing.T, e *env)
		ref   func(keyhold.WrapRef) keyhold.WrapRef
		// want is the code of Wrap, Unwrap and Check alike ("" = success).
		want       string
		wantDetail string
	}{
		{name: "access policy", vault: wrapUnwrap},
		{name: "no access policy", vault: nil, want: keyhold.EForbidden, wantDetail: "Forbidden"},
		{name: "rbac without role", vault: both(wrapUnwrap, func(p *keyvault.Properties) { yes := true; p.EnableRbacAuthorization = &yes }),
			want: keyhold.EForbidden},
		{name: "rbac with role", vault: func(p *keyvault.Properties) { yes := true; p.EnableRbacAuthorization = &yes },
			setup: func(t *testing.T, e *env) { e.assignCryptoUser("a1b2c3d4-0000-4000-8000-000000000002") }},
		{name: "key disabled", vault: wrapUnwrap, setup: func(t *testing.T, e *env) {
			e.patchKey("cmk", `{"attributes":{"enabled":false}}`)
		}, want: keyhold.EForbidden},
		{name: "key expired", vault: wrapUnwrap, setup: func(t *testing.T, e *env) {
			e.patchKey("cmk", fmt.Sprintf(`{"attributes":{"exp":%d}}`, e.clock.Now().Add(time.Hour).Unix()))
			e.clock.Add(2 * time.Hour)
		}, want: keyhold.EForbidden},
		{name: "key deleted", vault: wrapUnwrap, setup: func(t *testing.T, e *env) {
			if code, m := e.call("DELETE", "/vaults/kv-cmk/keys/cmk", ""); code != 200 {
				t.Fatalf("delete: %d %v", code, m)
			}
		}, want: keyhold.EForbidden, wantDetail: "KeyNotFound"},
		{name: "vault gone", vault: wrapUnwrap, setup: func(t *testing.T, e *env) {
			if err := e.store.DeleteResource(context.Background(), vaultID); err != nil {
				t.Fatal(err)
			}
		}, want: keyhold.EForbidden, wantDetail: keyvault.DetailVaultNotFound},
		{name: "firewall closed without bypass", vault: both(wrapUnwrap, closed), want: keyhold.EForbidden},
		{name: "firewall deny, IP rules only", vault: both(wrapUnwrap, denyNoBypass), want: keyhold.EForbidden},
		{name: "firewall deny with trusted-service bypass", vault: both(wrapUnwrap, denyBypass)},
		{name: "policy identity gone", vault: wrapUnwrap, setup: func(t *testing.T, e *env) {
			if err := e.store.DeletePrincipal(context.Background(), miOID); err != nil {
				t.Fatal(err)
			}
		}, want: keyhold.EForbidden, wantDetail: builtin.DetailPolicyIdentityNotFound},
		{name: "another policy", vault: wrapUnwrap, ref: func(r keyhold.WrapRef) keyhold.WrapRef {
			r.PolicyID = strings.Replace(policyID, "ep-contoso", "ep-other", 1)
			return r
		}, want: keyhold.EForbidden, wantDetail: builtin.DetailPolicyIdentityNotFound},
		{name: "identity disabled", vault: wrapUnwrap, setup: func(t *testing.T, e *env) {
			p, err := e.store.GetPrincipal(context.Background(), miOID)
			if err != nil {
				t.Fatal(err)
			}
			p.Disabled = true
			if err := e.store.UpdatePrincipal(context.Background(), p); err != nil {
				t.Fatal(err)
			}
		}, want: keyhold.EForbidden},
		{name: "not a vault id", vault: wrapUnwrap, ref: func(r keyhold.WrapRef) keyhold.WrapRef {
			r.VaultID = "/subscriptions/" + sub
			return r
		}, want: keyhold.EInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			ctx := context.Background()
			e.putVault(nil)
			version := e.createKey("cmk", "")
			ref := customerRef("cmk")
			root := bytes.Repeat([]byte{7}, 32)
			// A value wrapped while the key was usable, to unwrap afterwards.
			e.putVault(wrapUnwrap)
			wrapped, used, err := e.drv.Wrap(ctx, ref, keyhold.NewSecret(bytes.Clone(root)))
			if err != nil || used.KeyVersion != version {
				t.Fatalf("Wrap before the change: %v (version %q, want %q)", err, used.KeyVersion, version)
			}
			e.putVault(tt.vault)
			if tt.setup != nil {
				tt.setup(t, e)
			}
			if tt.ref != nil {
				ref, used = tt.ref(ref), tt.ref(used)
			}

			_, _, werr := e.drv.Wrap(ctx, ref, keyhold.NewSecret(bytes.Clone(root)))
			got, uerr := e.drv.Unwrap(ctx, used, wrapped)
			cerr := e.drv.Check(ctx, ref)
			for what, err := range map[string]error{"Wrap": werr, "Unwrap": uerr, "Check": cerr} {
				if c := keyhold.ErrorCode(err); c != tt.want {
					t.Errorf("%s: code %q (%v), want %q", what, c, err, tt.want)
				}
				if tt.wantDetail != "" && keyhold.ErrorDetail(err) != tt.wantDetail {
					t.Errorf("%s: detail %q, want %q", what, keyhold.ErrorDetail(err), tt.wantDetail)
				}
			}
			if uerr == nil && !bytes.Equal(got.Reveal(), root) {
				t.Error("Unwrap returned other bytes")
			}
		})
	}
}

func TestDriverWithoutVaultIsUnavailable(t *testing.T) {
	e := newEnv(t)
	drv := builtin.New(builtin.Config{Store: e.store, Seal: e.seal})
	err := drv.Check(context.Background(), customerRef("cmk"))
	if !kms.Unreachable(err) {
		t.Errorf("Check without a vault service: err = %v, want unavailable", err)
	}
}

func TestStoreDownIsUnavailable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.putVault(grantMI("get", "wrapKey", "unwrapKey"))
	e.createKey("cmk", "")
	ctx := context.Background()
	pref, err := builtin.EnsurePlatformKey(ctx, e.store, e.seal)
	if err != nil {
		t.Fatal(err)
	}
	e.store.Close()
	for _, ref := range []keyhold.WrapRef{customerRef("cmk"), pref} {
		if err := e.drv.Check(ctx, ref); !kms.Unreachable(err) {
			t.Errorf("Check(%s) with the store closed: err = %v, want unavailable, not a lock", kms.Describe(ref), err)
		}
	}
}

func TestEnsurePlatformKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	r1, err := builtin.EnsurePlatformKey(ctx, e.store, e.seal)
	if err != nil {
		t.Fatal(err)
	}
	want := keyhold.WrapRef{Kind: keyhold.WrapPlatform, VaultID: builtin.SystemVault, KeyName: builtin.PlatformKeyName,
		KeyVersion: r1.KeyVersion, Algorithm: kms.DefaultAlgorithm}
	if r1 != want || !keycrypto.IsVersion(r1.KeyVersion) {
		t.Errorf("EnsurePlatformKey = %+v, want %+v", r1, want)
	}
	r2, err := builtin.EnsurePlatformKey(ctx, e.store, e.seal)
	if err != nil || r2 != r1 {
		t.Errorf("second EnsurePlatformKey = %+v, %v; want the same key %+v", r2, err, r1)
	}
	v, err := e.store.GetKeyVersion(ctx, builtin.SystemVault, builtin.PlatformKeyName, "")
	if err != nil {
		t.Fatal(err)
	}
	if v.Kty != keycrypto.KtyRSA || v.KeySize != builtin.PlatformKeySize || strings.Join(v.KeyOps, ",") != "wrapKey,unwrapKey" || !v.Enabled {
		t.Errorf("platform key = %s %d %v enabled %v", v.Kty, v.KeySize, v.KeyOps, v.Enabled)
	}
	if bytes.Contains(v.SealedPrivate, []byte("BEGIN")) || len(v.SealedPrivate) < 1000 {
		t.Error("the private part is not sealed")
	}
	// A driver with another master key cannot use it.
	other, _ := seal.NewKey(seal.GenerateMasterKey())
	drv := builtin.New(builtin.Config{Store: e.store, Seal: other})
	wrapped, used, err := drv.Wrap(ctx, r1, keyhold.NewSecret(make([]byte, 32)))
	if err != nil {
		t.Fatal(err) // wrapping needs only the public part
	}
	if _, err := drv.Unwrap(ctx, used, wrapped); keyhold.ErrorCode(err) != keyhold.EInternal {
		t.Errorf("Unwrap under another master key: err = %v, want internal", err)
	}
	if _, err := builtin.EnsurePlatformKey(ctx, e.store, nil); err != nil {
		t.Errorf("EnsurePlatformKey with the key present needs no seal: %v", err)
	}
}

// TestSystemVaultIsInvisibleToTenants: the data plane cannot reach the
// system vault's keys, whatever the caller.
func TestSystemVaultIsInvisibleToTenants(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if _, err := builtin.EnsurePlatformKey(ctx, e.store, e.seal); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/vaults/$system/keys/platform-key", "/vaults/%24system/keys/platform-key", "/vaults/$system/keys"} {
		code, m := e.call("GET", path, "")
		if code == 200 {
			t.Errorf("GET %s = 200 %v", path, m)
		}
	}
	// And a customer ref cannot point at it.
	ref := keyhold.WrapRef{Kind: keyhold.WrapCustomer, PolicyID: policyID, VaultID: builtin.SystemVault, KeyName: builtin.PlatformKeyName}
	if err := e.drv.Check(ctx, ref); keyhold.ErrorCode(err) != keyhold.EInvalid {
		t.Errorf("customer ref to the system vault: err = %v, want invalid", err)
	}
	// Nor a platform ref at a tenant vault, or at another system key.
	for _, ref := range []keyhold.WrapRef{
		{Kind: keyhold.WrapPlatform, VaultID: vaultID, KeyName: builtin.PlatformKeyName},
		{Kind: keyhold.WrapPlatform, VaultID: builtin.SystemVault, KeyName: "byok-" + tenant},
		{Kind: keyhold.WrapBYOK, VaultID: builtin.SystemVault, KeyName: builtin.PlatformKeyName},
	} {
		if err := e.drv.Check(ctx, ref); keyhold.ErrorCode(err) != keyhold.EInvalid {
			t.Errorf("Check(%s): err = %v, want invalid", kms.Describe(ref), err)
		}
	}
}

func TestImportBYOK(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	good := rsaJWK(t)
	pubOnly := good
	pubOnly.D, pubOnly.P, pubOnly.Q = nil, nil, nil
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecJWK := keycrypto.JWK{Kty: keycrypto.KtyEC, Crv: keycrypto.CurveP256, X: ec.X.Bytes(), Y: ec.Y.Bytes(), D: ec.D.Bytes()}
	bad := good
	bad.N = append([]byte{1}, bad.N...)
	for _, tc := range []struct {
		name   string
		tenant string
		jwk    keycrypto.JWK
	}{
		{"public part only", tenant, pubOnly},
		{"EC", tenant, ecJWK},
		{"inconsistent", tenant, bad},
		{"empty", tenant, keycrypto.JWK{}},
		{"no tenant", "", good},
		{"tenant with a slash", "a/b", good},
	} {
		if _, err := e.drv.ImportBYOK(ctx, tc.tenant, tc.jwk); keyhold.ErrorCode(err) != keyhold.EInvalid {
			t.Errorf("%s: err = %v, want invalid", tc.name, err)
		}
	}
	r1, err := e.drv.ImportBYOK(ctx, strings.ToUpper(tenant), good)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Kind != keyhold.WrapBYOK || r1.KeyName != "byok-"+tenant || !keycrypto.IsVersion(r1.KeyVersion) {
		t.Errorf("ImportBYOK = %+v", r1)
	}
	// A second upload is a new version, which the newest ref then wraps with.
	r2, err := e.drv.ImportBYOK(ctx, tenant, rsaJWK(t))
	if err != nil {
		t.Fatal(err)
	}
	_, used, err := e.drv.Wrap(ctx, builtin.BYOKRef(tenant), keyhold.NewSecret(make([]byte, 32)))
	if err != nil || used.KeyVersion != r2.KeyVersion || r2.KeyVersion == r1.KeyVersion {
		t.Errorf("Wrap with the BYOK ref used %q (%v), want the second upload %q", used.KeyVersion, err, r2.KeyVersion)
	}
	// The wrapped root key opens with the tenant's own private key: the
	// system vault used exactly the uploaded key.
	wrapped, used, err := e.drv.Wrap(ctx, r1, keyhold.NewSecret(bytes.Repeat([]byte{3}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	priv, err := keycrypto.ImportJWK(good)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := priv.UnwrapKey(used.Algorithm, wrapped)
	if err != nil || !bytes.Equal(pt, bytes.Repeat([]byte{3}, 32)) {
		t.Errorf("the tenant's key does not unwrap what the system vault wrapped: %v", err)
	}
}

// TestBuiltinWarmPathMakesNoVaultCalls: a keyring over the counted builtin
// driver asks the vault once per generation, then never while warm.
func TestBuiltinWarmPathMakesNoVaultCalls(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.putVault(grantMI("get", "wrapKey", "unwrapKey"))
	e.createKey("cmk", "")
	m := kms.NewMetrics()
	w := kms.Counted(e.drv, m)
	root, _ := envelope.NewRootKey(nil)
	wrapped, used, err := w.Wrap(ctx, customerRef("cmk"), root)
	if err != nil {
		t.Fatal(err)
	}
	// The generation is stored where the platform keeps it, and the
	// keyring reads it from the store.
	if err := e.store.CreateEnvironment(ctx, &keyhold.Environment{ID: "env-1", TenantID: tenant, DisplayName: "Sales", Region: "europe",
		Type: keyhold.EnvProduction, RuntimeState: keyhold.RuntimeEnabled, KeyManagedBy: keyhold.KeyManagedByCustomer,
		EncryptionStatus: keyhold.EncryptionEncrypted, CreatedAt: e.clock.Now(), UpdatedAt: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	g := &keyhold.RootKeyGeneration{EnvironmentID: "env-1", Generation: 1, Wrapped: wrapped, WrappedBy: used, State: keyhold.GenerationActive,
		CreatedAt: e.clock.Now(), UpdatedAt: e.clock.Now()}
	if err := e.store.CreateGeneration(ctx, g); err != nil {
		t.Fatal(err)
	}
	kr := envelope.NewKeyring(e.store, kms.GenerationUnwrapper{Wrapper: w})
	b := envelope.RowBinding("env-1", "accounts", "r1")
	sealed := envelope.Seal(root, 1, b, []byte("row"))
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				if pt, err := kr.Open(ctx, b, sealed); err != nil || string(pt) != "row" {
					t.Errorf("Open: %q %v", pt, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if got := m.Calls(kms.CallUnwrap); got != 1 {
		t.Errorf("320 concurrent reads made %d unwrap calls, want 1", got)
	}
	// The customer disables the key: once the keyring is wiped (the lock),
	// the next read asks the vault and is refused.
	e.patchKey("cmk", `{"attributes":{"enabled":false}}`)
	kr.Wipe("env-1")
	if _, err := kr.Open(ctx, b, sealed); !kms.Denied(err) {
		t.Errorf("Open after disable and wipe: err = %v, want forbidden", err)
	}
}
