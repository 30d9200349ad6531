package keyvault_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/keyvault"
	"github.com/keyhold/keyhold/keyvault/keycrypto"
	"github.com/keyhold/keyhold/rbac"
)

// internalCase is a vault and key set-up and what the internal operations
// must answer for the policy identity.
type internalCase struct {
	name      string
	vault     func(*keyvault.Properties)
	createKey string // "" means RSA 2048
	setup     func(t *testing.T, e *unitEnv, version string)
	after     func(t *testing.T, e *unitEnv)
	principal func(*keyhold.Principal)
	vaultID   string // "" means kv-io's id

	wantWrap   string // keyhold code, "" for success
	wantUnwrap string
	wantCheck  string // "" means the first of wantWrap and wantUnwrap
	wantMsg    string // a substring of the first error's message
}

func TestInternalOps(t *testing.T) {
	wrapUnwrap := grant("get", "wrapKey", "unwrapKey")
	closed := func(p *keyvault.Properties) { p.PublicNetworkAccess = "Disabled" }
	tests := []internalCase{
		{name: "access policy", vault: wrapUnwrap},
		{name: "access policy all", vault: grant("all")},
		{name: "access policy without get", vault: grant("wrapKey", "unwrapKey"), wantCheck: keyhold.EForbidden},
		{name: "no access policy", vault: func(*keyvault.Properties) {},
			wantWrap: keyhold.EForbidden, wantUnwrap: keyhold.EForbidden, wantMsg: "does not have keys wrapKey permission"},
		{name: "wrap only", vault: grant("wrapKey"), wantUnwrap: keyhold.EForbidden, wantMsg: "does not have keys unwrapKey permission"},
		{name: "group access policy", vault: func(p *keyvault.Properties) {
			p.AccessPolicies = append(p.AccessPolicies, keyvault.AccessPolicy{TenantID: testTenant, ObjectID: groupOID,
				Permissions: keyvault.Permissions{Keys: []string{"get", "wrapKey", "unwrapKey"}}})
		}, setup: func(t *testing.T, e *unitEnv, _ string) { joinGroup(t, e) }},
		{name: "rbac without role", vault: all(wrapUnwrap, rbacOn),
			wantWrap: keyhold.EForbidden, wantUnwrap: keyhold.EForbidden, wantMsg: "Caller is not authorized"},
		{name: "rbac crypto service encryption user", vault: rbacOn, setup: func(t *testing.T, e *unitEnv, _ string) {
			assign(t, e, miOID, rbac.RoleKeyVaultCryptoServiceEncryptionUser, vaultID("kv-io"))
		}},
		{name: "rbac role through a group", vault: rbacOn, setup: func(t *testing.T, e *unitEnv, _ string) {
			joinGroup(t, e)
			assign(t, e, groupOID, rbac.RoleKeyVaultCryptoServiceEncryptionUser, vaultID("kv-io"))
		}},
		{name: "rbac reader", vault: rbacOn, setup: func(t *testing.T, e *unitEnv, _ string) {
			assign(t, e, miOID, rbac.RoleKeyVaultReader, vaultID("kv-io"))
		}, wantWrap: keyhold.EForbidden, wantUnwrap: keyhold.EForbidden},
		{name: "key disabled", vault: wrapUnwrap, setup: patchKeyIn("kv-io", `{"attributes":{"enabled":false}}`),
			wantWrap: keyhold.EForbidden, wantUnwrap: keyhold.EForbidden, wantMsg: "disabled key"},
		{name: "key not yet valid", vault: wrapUnwrap, setup: patchKeyIn("kv-io", fmt.Sprintf(`{"attributes":{"nbf":%d}}`, start.Add(time.Hour).Unix())),
			wantWrap: keyhold.EForbidden, wantUnwrap: keyhold.EForbidden, wantMsg: "not yet valid"},
		{name: "key expired", vault: wrapUnwrap, setup: func(t *testing.T, e *unitEnv, v string) {
			patchKeyIn("kv-io", fmt.Sprintf(`{"attributes":{"exp":%d}}`, start.Add(time.Hour).Unix()))(t, e, v)
			e.clock.Add(2 * time.Hour)
		}, wantWrap: keyhold.EForbidden, wantUnwrap: keyhold.EForbidden, wantMsg: "expired key"},
		{name: "key_ops without unwrapKey", vault: wrapUnwrap, createKey: `{"kty":"RSA","key_size":2048,"key_ops":["wrapKey","encrypt"]}`,
			wantUnwrap: keyhold.EForbidden, wantMsg: "Operation unwrapKey is not permitted"},
		{name: "key deleted", vault: wrapUnwrap, setup: func(t *testing.T, e *unitEnv, _ string) {
			must(t, e.call(caller(ownerOID), "DELETE", "/vaults/kv-io/keys/cmk", nil), 200)
		}, wantWrap: keyhold.ENotFound, wantUnwrap: keyhold.ENotFound, wantMsg: "was not found"},
		{name: "firewall closed without bypass", vault: all(wrapUnwrap, closed),
			wantWrap: keyhold.EForbidden, wantUnwrap: keyhold.EForbidden, wantMsg: "not a trusted service"},
		{name: "firewall deny, IP rules only", vault: all(wrapUnwrap, func(p *keyvault.Properties) {
			p.NetworkACLs = &keyvault.NetworkRuleSet{DefaultAction: "Deny", Bypass: "None", IPRules: []keyvault.IPRule{{Value: "0.0.0.0/0"}}}
		}), wantWrap: keyhold.EForbidden, wantUnwrap: keyhold.EForbidden},
		{name: "firewall deny, trusted services bypass", vault: all(wrapUnwrap, func(p *keyvault.Properties) {
			p.NetworkACLs = &keyvault.NetworkRuleSet{DefaultAction: "Deny", Bypass: "AzureServices"}
		})},
		{name: "bypass is for policy identities only", vault: all(wrapUnwrap, func(p *keyvault.Properties) {
			p.NetworkACLs = &keyvault.NetworkRuleSet{DefaultAction: "Deny", Bypass: "AzureServices"}
		}), principal: func(p *keyhold.Principal) { p.Type, p.ResourceID = keyhold.PrincipalServicePrincipal, "" },
			wantWrap: keyhold.EForbidden, wantUnwrap: keyhold.EForbidden},
		{name: "identity disabled", vault: wrapUnwrap, principal: func(p *keyhold.Principal) { p.Disabled = true },
			wantWrap: keyhold.EForbidden, wantUnwrap: keyhold.EForbidden, wantMsg: "is disabled"},
		{name: "vault soft-deleted", vault: wrapUnwrap, after: func(t *testing.T, e *unitEnv) { softDeleteVault(t, e, "kv-io") },
			wantWrap: keyhold.ENotFound, wantUnwrap: keyhold.ENotFound, wantMsg: "was not found"},
		{name: "same name, another vault", vault: wrapUnwrap,
			vaultID:  strings.Replace(vaultID("kv-io"), "rg-kv", "rg-other", 1),
			wantWrap: keyhold.ENotFound, wantUnwrap: keyhold.ENotFound},
		{name: "not a vault id", vault: wrapUnwrap, vaultID: "/subscriptions/" + testSub + "/resourceGroups/rg-kv",
			wantWrap: keyhold.EInvalid, wantUnwrap: keyhold.EInvalid, wantMsg: "is not a key vault resource id"},
		{name: "EC key", vault: wrapUnwrap, createKey: `{"kty":"EC","crv":"P-256"}`,
			wantWrap: keyhold.EForbidden, wantUnwrap: keyhold.EForbidden, wantMsg: "not permitted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newUnitEnv(t)
			ctx := context.Background()
			e.clock.Set(start)
			putVault(t, e.store, "kv-io", testTenant, nil)
			body := tt.createKey
			if body == "" {
				body = `{"kty":"RSA","key_size":2048}`
			}
			b := must(t, e.call(caller(ownerOID), "POST", "/vaults/kv-io/keys/cmk/create", body), 200).json(t)
			kid := b["key"].(map[string]any)["kid"].(string)
			version := kid[strings.LastIndex(kid, "/")+1:]
			// A wrapped value made while the key was usable, for unwrap.
			wrappedBefore := ownerWrap(t, e, version)
			if tt.setup != nil {
				tt.setup(t, e, version)
			}
			putVault(t, e.store, "kv-io", testTenant, func(p *keyvault.Properties) {
				p.AccessPolicies = nil
				tt.vault(p)
			})
			if tt.after != nil {
				tt.after(t, e)
			}
			p := identityPrincipal()
			if tt.principal != nil {
				tt.principal(p)
			}
			vid := tt.vaultID
			if vid == "" {
				vid = vaultID("kv-io")
			}
			root := bytes.Repeat([]byte{0x5a}, 32)

			used, wrapped, err := e.svc.WrapKeyAs(ctx, p, vid, "cmk", "", keycrypto.RSAOAEP256, root)
			checkCode(t, "WrapKeyAs", err, tt.wantWrap, tt.wantMsg)
			if err == nil && used != version {
				t.Errorf("WrapKeyAs used version %q, want %q", used, version)
			}
			if wrapped == nil {
				wrapped = wrappedBefore
			}
			if wrapped == nil {
				wrapped = make([]byte, 256) // the key cannot wrap at all (EC)
			}
			got, err := e.svc.UnwrapKeyAs(ctx, p, vid, "cmk", version, keycrypto.RSAOAEP256, wrapped)
			if tt.wantWrap == "" {
				checkCode(t, "UnwrapKeyAs", err, tt.wantUnwrap, tt.wantMsg)
			} else {
				checkCode(t, "UnwrapKeyAs", err, tt.wantUnwrap, "")
			}
			if err == nil && !bytes.Equal(got.Reveal(), root) {
				t.Errorf("UnwrapKeyAs returned other bytes")
			}

			// CheckKeyAs refuses exactly when one of the two would.
			want := tt.wantCheck
			if want == "" {
				want = tt.wantWrap
			}
			if want == "" {
				want = tt.wantUnwrap
			}
			checked, err := e.svc.CheckKeyAs(ctx, p, vid, "cmk", "")
			checkCode(t, "CheckKeyAs", err, want, "")
			if err == nil && checked != version {
				t.Errorf("CheckKeyAs checked %q, want %q", checked, version)
			}
			// And agrees with CheckKeyAccess, the probe's report, on whether
			// the identity can use the key.
			if tt.vaultID == "" && tt.createKey == "" {
				rep, err := e.svc.CheckKeyAccess(ctx, vid, "cmk", "", p)
				if err != nil {
					t.Fatal(err)
				}
				if rep.Usable() != (want == "") {
					t.Errorf("CheckKeyAccess usable = %v, internal ops say %q:\n%s", rep.Usable(), want, dump(rep))
				}
			}
		})
	}
}

func checkCode(t *testing.T, what string, err error, want, msg string) {
	t.Helper()
	if got := keyhold.ErrorCode(err); got != want {
		t.Fatalf("%s: code %q (%v), want %q", what, got, err, want)
	}
	if err != nil && msg != "" && !strings.Contains(keyhold.ErrorMessage(err), msg) {
		t.Errorf("%s: message %q, want it to contain %q", what, keyhold.ErrorMessage(err), msg)
	}
}

func patchKeyIn(vault, body string) func(*testing.T, *unitEnv, string) {
	return func(t *testing.T, e *unitEnv, version string) {
		t.Helper()
		must(t, e.call(caller(ownerOID), "PATCH", "/vaults/"+vault+"/keys/cmk/"+version, body), 200)
	}
}

// ownerWrap wraps 32 bytes of 0x5a through the data plane as the owner.
func ownerWrap(t *testing.T, e *unitEnv, version string) []byte {
	t.Helper()
	r := e.call(caller(ownerOID), "POST", "/vaults/kv-io/keys/cmk/"+version+"/wrapkey",
		map[string]string{"alg": keycrypto.RSAOAEP256, "value": base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0x5a}, 32))})
	if r.status != 200 {
		return nil // an EC key, say
	}
	out, err := base64.RawURLEncoding.DecodeString(r.json(t)["value"].(string))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestInternalOpsInterop: what WrapKeyAs wraps the data plane unwraps, and
// the other way round, so the internal path is the same key and algorithm.
func TestInternalOpsInterop(t *testing.T) {
	e := newUnitEnv(t)
	ctx := context.Background()
	e.clock.Set(start)
	putVault(t, e.store, "kv-io", testTenant, grant("wrapKey", "unwrapKey"))
	b := must(t, e.call(caller(ownerOID), "POST", "/vaults/kv-io/keys/cmk/create", `{"kty":"RSA","key_size":3072}`), 200).json(t)
	kid := b["key"].(map[string]any)["kid"].(string)
	version := kid[strings.LastIndex(kid, "/")+1:]
	p := identityPrincipal()
	root := bytes.Repeat([]byte{0x5a}, 32)

	used, wrapped, err := e.svc.WrapKeyAs(ctx, p, vaultID("kv-io"), "cmk", version, keycrypto.RSAOAEP256, root)
	if err != nil || used != version {
		t.Fatalf("WrapKeyAs = %q, %v", used, err)
	}
	r := must(t, e.call(caller(ownerOID), "POST", "/vaults/kv-io/keys/cmk/"+version+"/unwrapkey",
		map[string]string{"alg": keycrypto.RSAOAEP256, "value": base64.RawURLEncoding.EncodeToString(wrapped)}), 200).json(t)
	if got, _ := base64.RawURLEncoding.DecodeString(r["value"].(string)); !bytes.Equal(got, root) {
		t.Fatalf("the data plane unwrapped %x", got)
	}
	got, err := e.svc.UnwrapKeyAs(ctx, p, vaultID("kv-io"), "cmk", version, keycrypto.RSAOAEP256, ownerWrap(t, e, version))
	if err != nil || !bytes.Equal(got.Reveal(), root) {
		t.Fatalf("UnwrapKeyAs of the data plane's wrap: %v", err)
	}

	// A new version becomes the one "" wraps with; the old one still unwraps.
	must(t, e.call(caller(ownerOID), "POST", "/vaults/kv-io/keys/cmk/create", `{"kty":"RSA","key_size":2048}`), 200)
	used2, _, err := e.svc.WrapKeyAs(ctx, p, vaultID("kv-io"), "cmk", "", keycrypto.RSAOAEP256, root)
	if err != nil || used2 == version || !keycrypto.IsVersion(used2) {
		t.Errorf("WrapKeyAs after a new version used %q (%v), want the new version", used2, err)
	}
	if _, err := e.svc.UnwrapKeyAs(ctx, p, vaultID("kv-io"), "cmk", version, keycrypto.RSAOAEP256, wrapped); err != nil {
		t.Errorf("the old version no longer unwraps: %v", err)
	}

	// Bad input is EInvalid, never a panic or an internal error.
	bad := []struct {
		name string
		err  error
	}{}
	add := func(name string, err error) {
		bad = append(bad, struct {
			name string
			err  error
		}{name, err})
	}
	_, err = e.svc.UnwrapKeyAs(ctx, p, vaultID("kv-io"), "cmk", version, keycrypto.RSAOAEP256, append(bytes.Clone(wrapped[:len(wrapped)-1]), wrapped[len(wrapped)-1]^1))
	add("tampered", err)
	_, err = e.svc.UnwrapKeyAs(ctx, p, vaultID("kv-io"), "cmk", version, keycrypto.RSAOAEP256, wrapped[:10])
	add("truncated", err)
	_, err = e.svc.UnwrapKeyAs(ctx, p, vaultID("kv-io"), "cmk", used2, keycrypto.RSAOAEP256, wrapped)
	add("other version", err)
	_, err = e.svc.UnwrapKeyAs(ctx, p, vaultID("kv-io"), "cmk", version, keycrypto.RSAOAEP, wrapped)
	add("other algorithm", err)
	_, err = e.svc.UnwrapKeyAs(ctx, p, vaultID("kv-io"), "cmk", version, "", wrapped)
	add("no algorithm", err)
	_, err = e.svc.UnwrapKeyAs(ctx, p, vaultID("kv-io"), "cmk", version, keycrypto.RSAOAEP256, nil)
	add("nothing to unwrap", err)
	_, _, err = e.svc.WrapKeyAs(ctx, p, vaultID("kv-io"), "cmk", "", keycrypto.RSAOAEP256, nil)
	add("nothing to wrap", err)
	_, _, err = e.svc.WrapKeyAs(ctx, p, vaultID("kv-io"), "cmk", "", "A256KW", root)
	add("unknown algorithm", err)
	_, _, err = e.svc.WrapKeyAs(ctx, p, vaultID("kv-io"), "bad/name", "", keycrypto.RSAOAEP256, root)
	add("bad key name", err)
	_, _, err = e.svc.WrapKeyAs(ctx, nil, vaultID("kv-io"), "cmk", "", keycrypto.RSAOAEP256, root)
	add("no principal", err)
	for _, c := range bad {
		if keyhold.ErrorCode(c.err) != keyhold.EInvalid {
			t.Errorf("%s: err = %v, want invalid", c.name, c.err)
		}
	}
	_, err = e.svc.UnwrapKeyAs(ctx, p, vaultID("kv-io"), "cmk", strings.Repeat("ab", 16), keycrypto.RSAOAEP256, wrapped)
	if !keyhold.IsNotFound(err) {
		t.Errorf("missing version: err = %v, want not found", err)
	}
}
