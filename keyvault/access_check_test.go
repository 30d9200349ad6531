package keyvault_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/keyvault"
	"github.com/keyhold/keyhold/rbac"
)

const (
	miOID    = "3f2a9c1e-5555-4555-8555-555555555555"
	groupOID = "44444444-4444-4444-8444-444444444444"
	policyID = "/subscriptions/" + testSub + "/resourceGroups/rg-ep/providers/Microsoft.PowerPlatform/enterprisePolicies/ep-contoso"
)

// identityPrincipal is an enterprise policy's managed identity, as the
// identity service creates it.
func identityPrincipal() *keyhold.Principal {
	return &keyhold.Principal{ID: miOID, TenantID: testTenant, Type: keyhold.PrincipalManagedIdentity,
		DisplayName: "ep-contoso", AppID: "app-3f2a9c1e", ResourceID: policyID}
}

// grant gives the policy identity key permissions by access policy.
func grant(perms ...string) func(*keyvault.Properties) {
	return func(p *keyvault.Properties) {
		p.AccessPolicies = append(p.AccessPolicies, keyvault.AccessPolicy{TenantID: testTenant, ObjectID: miOID,
			Permissions: keyvault.Permissions{Keys: perms}})
	}
}

func purgeProtected(p *keyvault.Properties) { yes := true; p.EnablePurgeProtection = &yes }

func all(mods ...func(*keyvault.Properties)) func(*keyvault.Properties) {
	return func(p *keyvault.Properties) {
		for _, m := range mods {
			m(p)
		}
	}
}

// accessCase is one vault and key set-up and what CheckKeyAccess must say.
type accessCase struct {
	name  string
	vault func(*keyvault.Properties) // nil: no vault at all
	// setup runs after the vault and its key "cmk" exist (unless
	// createKey is false); it may change them through the data plane.
	setup func(t *testing.T, e *unitEnv, version string)
	// after runs once the vault has its final properties.
	after     func(t *testing.T, e *unitEnv)
	createKey string // the create body; "" means an RSA 2048 key
	noKey     bool
	principal func(*keyhold.Principal)
	version   func(first string) string // the version to check; nil means the newest

	wantFailed  []string // names of failed checks, in order
	wantWarn    []string // names of checks with a warning
	wantUsable  bool
	wantMessage string // a substring of Reason()
	wantFix     string // a substring of the fix of the first failed check
}

func TestCheckKeyAccess(t *testing.T) {
	good := all(grant("get", "wrapKey", "unwrapKey"), purgeProtected)
	tests := []accessCase{
		{name: "healthy", vault: good, wantUsable: true, wantMessage: "identity " + miOID + " can get, wrap and unwrap with key cmk in vault kv-ac"},
		{name: "access policy all", vault: all(grant("all"), purgeProtected), wantUsable: true},
		{name: "no vault", wantFailed: []string{keyvault.CheckVaultExists}, wantMessage: "vault kv-ac does not exist"},
		{name: "vault deleted", vault: good, after: func(t *testing.T, e *unitEnv) { softDeleteVault(t, e, "kv-ac") },
			wantFailed: []string{keyvault.CheckVaultExists}, wantMessage: "vault kv-ac is deleted", wantFix: "recover the deleted vault"},
		{name: "soft delete off", vault: all(good, func(p *keyvault.Properties) { no := false; p.EnableSoftDelete = &no }),
			wantFailed: []string{keyvault.CheckSoftDelete}, wantWarn: []string{keyvault.CheckSoftDelete}, wantUsable: true, wantMessage: "soft delete is off"},
		{name: "purge protection off", vault: grant("get", "wrapKey", "unwrapKey"),
			wantFailed: []string{keyvault.CheckPurgeProtection}, wantWarn: []string{keyvault.CheckPurgeProtection}, wantUsable: true,
			wantMessage: "purge protection is off for vault kv-ac", wantFix: "enablePurgeProtection"},
		{name: "lacks unwrapKey", vault: all(grant("get", "wrapKey"), purgeProtected),
			wantFailed: []string{keyvault.CheckPermissions}, wantMessage: "identity " + miOID + " lacks unwrapKey on vault kv-ac",
			wantFix: "grant the policy's identity Get, Wrap key and Unwrap key in the vault's access policies, or the Key Vault Crypto Service Encryption User role"},
		{name: "no access policy", vault: purgeProtected,
			wantFailed: []string{keyvault.CheckPermissions}, wantMessage: "lacks get, wrapKey and unwrapKey on vault kv-ac"},
		{name: "access policy of another tenant", vault: all(purgeProtected, func(p *keyvault.Properties) {
			p.AccessPolicies = append(p.AccessPolicies, keyvault.AccessPolicy{TenantID: "99999999-9999-4999-8999-999999999999", ObjectID: miOID,
				Permissions: keyvault.Permissions{Keys: []string{"all"}}})
		}), wantFailed: []string{keyvault.CheckPermissions}},
		{name: "group access policy", vault: all(purgeProtected, func(p *keyvault.Properties) {
			p.AccessPolicies = append(p.AccessPolicies, keyvault.AccessPolicy{TenantID: testTenant, ObjectID: groupOID,
				Permissions: keyvault.Permissions{Keys: []string{"get", "wrapKey", "unwrapKey"}}})
		}), setup: func(t *testing.T, e *unitEnv, _ string) { joinGroup(t, e) }, wantUsable: true},
		{name: "rbac without role", vault: all(good, rbacOn),
			wantFailed: []string{keyvault.CheckPermissions}, wantMessage: "only role assignments count", wantFix: "Key Vault Crypto Service Encryption User role"},
		{name: "rbac with crypto service encryption user on vault", vault: all(purgeProtected, rbacOn),
			setup: func(t *testing.T, e *unitEnv, _ string) {
				assign(t, e, miOID, rbac.RoleKeyVaultCryptoServiceEncryptionUser, vaultID("kv-ac"))
			}, wantUsable: true, wantMessage: "can get, wrap and unwrap"},
		{name: "rbac with role on the key", vault: all(purgeProtected, rbacOn),
			setup: func(t *testing.T, e *unitEnv, _ string) {
				assign(t, e, miOID, rbac.RoleKeyVaultCryptoServiceEncryptionUser, vaultID("kv-ac")+"/keys/cmk")
			}, wantUsable: true},
		{name: "rbac role through a group", vault: all(purgeProtected, rbacOn),
			setup: func(t *testing.T, e *unitEnv, _ string) {
				joinGroup(t, e)
				assign(t, e, groupOID, rbac.RoleKeyVaultCryptoServiceEncryptionUser, vaultID("kv-ac"))
			}, wantUsable: true},
		{name: "rbac reader role is not enough", vault: all(purgeProtected, rbacOn),
			setup: func(t *testing.T, e *unitEnv, _ string) {
				assign(t, e, miOID, rbac.RoleKeyVaultReader, vaultID("kv-ac"))
			}, wantFailed: []string{keyvault.CheckPermissions}, wantMessage: "lacks wrapKey and unwrapKey"},
		{name: "firewall closed", vault: all(good, func(p *keyvault.Properties) { p.PublicNetworkAccess = "Disabled" }),
			wantFailed: []string{keyvault.CheckNetwork}, wantMessage: "the firewall of vault kv-ac refuses identity", wantFix: "bypass AzureServices"},
		{name: "firewall deny without bypass", vault: all(good, func(p *keyvault.Properties) {
			p.NetworkACLs = &keyvault.NetworkRuleSet{DefaultAction: "Deny", Bypass: "None", IPRules: []keyvault.IPRule{{Value: "192.0.2.0/24"}}}
		}), wantFailed: []string{keyvault.CheckNetwork}},
		{name: "firewall closed, trusted services bypass", vault: all(good, func(p *keyvault.Properties) {
			p.PublicNetworkAccess = "Disabled"
			p.NetworkACLs = &keyvault.NetworkRuleSet{DefaultAction: "Deny", Bypass: "AzureServices"}
		}), wantUsable: true},
		{name: "bypass does not let an application through", vault: all(good, func(p *keyvault.Properties) {
			p.NetworkACLs = &keyvault.NetworkRuleSet{DefaultAction: "Deny", Bypass: "AzureServices"}
		}), principal: func(p *keyhold.Principal) { p.Type, p.ResourceID = keyhold.PrincipalServicePrincipal, "" },
			wantFailed: []string{keyvault.CheckNetwork}},
		{name: "identity disabled", vault: good, principal: func(p *keyhold.Principal) { p.Disabled = true },
			wantFailed: []string{keyvault.CheckIdentity}, wantMessage: "is disabled"},
		{name: "key missing", vault: good, noKey: true,
			wantFailed: []string{keyvault.CheckKeyExists}, wantMessage: "key cmk does not exist in vault kv-ac"},
		{name: "key deleted", vault: good, setup: func(t *testing.T, e *unitEnv, _ string) {
			must(t, e.call(caller(ownerOID), "DELETE", "/vaults/kv-ac/keys/cmk", nil), 200)
		}, wantFailed: []string{keyvault.CheckKeyExists}, wantMessage: "key cmk in vault kv-ac is deleted", wantFix: "recover the deleted key"},
		{name: "version missing", vault: good, version: func(string) string { return strings.Repeat("ab", 16) },
			wantFailed: []string{keyvault.CheckKeyExists}, wantMessage: "version " + strings.Repeat("ab", 16) + " does not exist"},
		{name: "key disabled", vault: good, setup: patchKey(`{"attributes":{"enabled":false}}`),
			wantFailed: []string{keyvault.CheckKeyEnabled}, wantMessage: "is disabled", wantFix: "enable the key version"},
		{name: "key not yet valid", vault: good, setup: patchKey(fmt.Sprintf(`{"attributes":{"nbf":%d}}`, start.Add(time.Hour).Unix())),
			wantFailed: []string{keyvault.CheckKeyValidity}, wantMessage: "is not valid before 2026-01-01T01:00:00Z"},
		{name: "key expired", vault: good, setup: func(t *testing.T, e *unitEnv, v string) {
			patchKey(fmt.Sprintf(`{"attributes":{"exp":%d}}`, start.Add(time.Hour).Unix()))(t, e, v)
			e.clock.Add(2 * time.Hour)
		}, wantFailed: []string{keyvault.CheckKeyValidity}, wantMessage: "expired on 2026-01-01T01:00:00Z"},
		{name: "key expires soon", vault: good, setup: patchKey(fmt.Sprintf(`{"attributes":{"exp":%d}}`, start.Add(10*24*time.Hour).Unix())),
			wantWarn: []string{keyvault.CheckKeyValidity}, wantUsable: true, wantMessage: "expires on 2026-01-11T00:00:00Z, in 10 days"},
		{name: "key expires in 40 days", vault: good, setup: patchKey(fmt.Sprintf(`{"attributes":{"exp":%d}}`, start.Add(40*24*time.Hour).Unix())),
			wantUsable: true},
		{name: "EC key", vault: good, createKey: `{"kty":"EC","crv":"P-256"}`,
			wantFailed: []string{keyvault.CheckKeyType, keyvault.CheckKeyOperations}, wantMessage: "a customer key must be RSA or RSA-HSM of at least 2048 bits"},
		{name: "key_ops without unwrapKey", vault: good, createKey: `{"kty":"RSA","key_size":2048,"key_ops":["wrapKey","encrypt"]}`,
			wantFailed: []string{keyvault.CheckKeyOperations}, wantMessage: "does not permit unwrapKey", wantFix: "key_ops"},
		{name: "key_ops updated away", vault: good, setup: patchKey(`{"key_ops":["sign","verify"]}`),
			wantFailed: []string{keyvault.CheckKeyOperations}, wantMessage: "does not permit wrapKey and unwrapKey"},
		{name: "older version disabled, newest fine", vault: good, setup: func(t *testing.T, e *unitEnv, v string) {
			patchKey(`{"attributes":{"enabled":false}}`)(t, e, v)
			must(t, e.call(caller(ownerOID), "POST", "/vaults/kv-ac/keys/cmk/create", `{"kty":"RSA","key_size":3072}`), 200)
		}, wantUsable: true},
		{name: "pinned older version disabled", vault: good, version: func(first string) string { return first },
			setup: func(t *testing.T, e *unitEnv, v string) {
				patchKey(`{"attributes":{"enabled":false}}`)(t, e, v)
				must(t, e.call(caller(ownerOID), "POST", "/vaults/kv-ac/keys/cmk/create", `{"kty":"RSA","key_size":3072}`), 200)
			}, wantFailed: []string{keyvault.CheckKeyEnabled}},
		{name: "everything wrong at once", vault: all(rbacOn, func(p *keyvault.Properties) { p.PublicNetworkAccess = "Disabled" }),
			setup:      patchKey(`{"attributes":{"enabled":false},"key_ops":["sign"]}`),
			wantFailed: []string{keyvault.CheckPurgeProtection, keyvault.CheckNetwork, keyvault.CheckPermissions, keyvault.CheckKeyEnabled, keyvault.CheckKeyOperations},
			wantWarn:   []string{keyvault.CheckPurgeProtection}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newUnitEnv(t)
			ctx := context.Background()
			e.clock.Set(start)
			// The vault starts open to its owner so that the key can be
			// made and changed; it gets the case's properties afterwards.
			if tt.vault != nil {
				putVault(t, e.store, "kv-ac", testTenant, nil)
			}
			version := ""
			if tt.vault != nil && !tt.noKey {
				body := tt.createKey
				if body == "" {
					body = `{"kty":"RSA","key_size":2048}`
				}
				b := must(t, e.call(caller(ownerOID), "POST", "/vaults/kv-ac/keys/cmk/create", body), 200).json(t)
				kid := b["key"].(map[string]any)["kid"].(string)
				version = kid[strings.LastIndex(kid, "/")+1:]
			}
			if tt.setup != nil {
				tt.setup(t, e, version)
			}
			if tt.vault != nil {
				putVault(t, e.store, "kv-ac", testTenant, func(p *keyvault.Properties) {
					p.AccessPolicies = nil
					tt.vault(p)
				})
			}
			if tt.after != nil {
				tt.after(t, e)
			}
			p := identityPrincipal()
			if tt.principal != nil {
				tt.principal(p)
			}
			ask := ""
			if tt.version != nil {
				ask = tt.version(version)
			}
			rep, err := e.svc.CheckKeyAccess(ctx, vaultID("kv-ac"), "cmk", ask, p)
			if err != nil {
				t.Fatalf("CheckKeyAccess: %v", err)
			}
			var failed, warned []string
			for _, c := range rep.Checks {
				if c.Message == "" {
					t.Errorf("check %s has no message", c.Name)
				}
				if !c.OK {
					failed = append(failed, c.Name)
					if c.Fix == "" {
						t.Errorf("failed check %s has no fix", c.Name)
					}
				}
				if c.Warning {
					warned = append(warned, c.Name)
				}
			}
			if got, want := strings.Join(failed, ","), strings.Join(tt.wantFailed, ","); got != want {
				t.Errorf("failed checks = %s, want %s\n%s", got, want, dump(rep))
			}
			if got, want := strings.Join(warned, ","), strings.Join(tt.wantWarn, ","); got != want {
				t.Errorf("warnings = %s, want %s", got, want)
			}
			if got := rep.Usable(); got != tt.wantUsable {
				t.Errorf("Usable() = %v, want %v\n%s", got, tt.wantUsable, dump(rep))
			}
			if got, want := rep.Passed(), len(tt.wantFailed) == 0; got != want {
				t.Errorf("Passed() = %v, want %v", got, want)
			}
			if !tt.wantUsable && !rep.Definite() {
				t.Errorf("a built-in vault's refusal must be Definite\n%s", dump(rep))
			}
			if !strings.Contains(rep.Reason(), tt.wantMessage) {
				t.Errorf("Reason() = %q, want it to contain %q", rep.Reason(), tt.wantMessage)
			}
			if tt.wantFix != "" {
				if len(failed) == 0 {
					t.Fatalf("no failed check to have fix %q", tt.wantFix)
				}
				if fix := firstFailed(rep).Fix; !strings.Contains(fix, tt.wantFix) {
					t.Errorf("fix = %q, want it to contain %q", fix, tt.wantFix)
				}
			}
			if tt.vault != nil && !tt.noKey && tt.version == nil && rep.VaultName == "kv-ac" {
				crossCheck(t, e, rep, p, tt.vault)
			}
		})
	}
}

// crossCheck asks the data plane itself, as the identity, for get, wrapKey
// and unwrapKey, and fails if it disagrees with the report: the report must
// use the data plane's rules, not a copy of them. The firewall is left out
// (the test's client address is not the platform's), and so are checks that
// only warn.
func crossCheck(t *testing.T, e *unitEnv, rep *keyvault.AccessReport, p *keyhold.Principal, mod func(*keyvault.Properties)) {
	t.Helper()
	for _, c := range rep.Checks {
		if c.Name == keyvault.CheckNetwork && !c.OK || c.Name == keyvault.CheckIdentity || c.Name == keyvault.CheckKeyType && !c.OK {
			return
		}
	}
	c := &keyhold.Caller{Principal: p, TenantID: p.TenantID, ClientID: p.AppID}
	if memberships, _ := e.store.ListMemberships(context.Background(), p.ID); len(memberships) > 0 {
		c.GroupIDs = memberships
	}
	allowed := true
	for _, call := range []struct{ method, path, body string }{
		{"GET", "/vaults/kv-ac/keys/cmk", ""},
		{"POST", "/vaults/kv-ac/keys/cmk/wrapKey", `{"alg":"RSA-OAEP-256","value":"AAECAwQFBgcICQoLDA0ODw"}`},
		{"POST", "/vaults/kv-ac/keys/cmk/unwrapKey", `{"alg":"RSA-OAEP-256","value":"` + strings.Repeat("A", 342) + `"}`},
	} {
		var body any
		if call.body != "" {
			body = call.body
		}
		r := e.call(c, call.method, call.path, body)
		if r.status == 403 || r.status == 404 {
			allowed = false
		}
	}
	if allowed != rep.Usable() {
		t.Errorf("the data plane %s the identity, but the report says Usable() = %v\n%s",
			map[bool]string{true: "allows", false: "refuses"}[allowed], rep.Usable(), dump(rep))
	}
}

func TestCheckKeyAccessErrors(t *testing.T) {
	e := newUnitEnv(t)
	ctx := context.Background()
	tests := []struct {
		name    string
		vaultID string
		p       *keyhold.Principal
		code    string
	}{
		{"no principal", vaultID("kv-ac"), nil, keyhold.EInvalid},
		{"not an id", "kv-ac", identityPrincipal(), keyhold.EInvalid},
		{"not a vault id", policyID, identityPrincipal(), keyhold.EInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.svc.CheckKeyAccess(ctx, tt.vaultID, "cmk", "", tt.p)
			if got := keyhold.ErrorCode(err); got != tt.code {
				t.Errorf("code = %q (%v), want %q", got, err, tt.code)
			}
			if err != nil && !strings.HasPrefix(keyhold.ErrorMessage(err), "keyvault: ") {
				t.Errorf("message %q lacks the package prefix", keyhold.ErrorMessage(err))
			}
		})
	}
}

func TestAccessReportReasonJoinsFailures(t *testing.T) {
	rep := &keyvault.AccessReport{Checks: []keyvault.AccessCheck{
		{Name: "a", OK: true, Message: "fine"},
		{Name: "b", Message: "first problem", Failure: keyvault.FailureDefinite},
		{Name: "c", Message: "only a warning", Warning: true},
		{Name: "d", Message: "second problem", Failure: keyvault.FailureUnreachable},
	}}
	if got, want := rep.Reason(), "first problem; second problem"; got != want {
		t.Errorf("Reason() = %q, want %q", got, want)
	}
	if !rep.Definite() || rep.Usable() || rep.Passed() {
		t.Errorf("Definite/Usable/Passed = %v/%v/%v, want true/false/false", rep.Definite(), rep.Usable(), rep.Passed())
	}
	rep.Checks = rep.Checks[:3]
	rep.Checks[1].Failure, rep.Checks[1].Warning = "", true
	if got, want := rep.Reason(), "first problem; only a warning"; got != want {
		t.Errorf("Reason() with warnings only = %q, want %q", got, want)
	}
	if !rep.Usable() || rep.Definite() {
		t.Errorf("warnings must not block")
	}
	rep.Checks[0].Failure = keyvault.FailureUnreachable
	rep.Checks[0].OK = false
	if rep.Definite() {
		t.Errorf("an unreachable vault is not a definite denial")
	}
}

var start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func rbacOn(p *keyvault.Properties) { yes := true; p.EnableRbacAuthorization = &yes }

func patchKey(body string) func(*testing.T, *unitEnv, string) {
	return func(t *testing.T, e *unitEnv, version string) {
		t.Helper()
		must(t, e.call(caller(ownerOID), "PATCH", "/vaults/kv-ac/keys/cmk/"+version, body), 200)
	}
}

func assign(t *testing.T, e *unitEnv, principalID, role, scope string) {
	t.Helper()
	def, ok := rbac.RoleByName(role)
	if !ok {
		t.Fatalf("no role %s", role)
	}
	a := &keyhold.RoleAssignment{Name: fmt.Sprintf("%08x-0000-4000-8000-000000000000", len(scope)+len(principalID)), TenantID: testTenant,
		Scope: scope, RoleDefinitionID: def.ID, PrincipalID: principalID, PrincipalType: keyhold.PrincipalServicePrincipal,
		CreatedAt: start, UpdatedAt: start}
	if err := e.store.CreateRoleAssignment(context.Background(), a); err != nil {
		t.Fatal(err)
	}
}

// joinGroup stores the tenant, the identity and a group it belongs to.
func joinGroup(t *testing.T, e *unitEnv) {
	t.Helper()
	ctx := context.Background()
	if err := e.store.CreateTenant(ctx, &keyhold.Tenant{ID: testTenant, DisplayName: "Contoso", DefaultDomain: "contoso.test", CreatedAt: start}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*keyhold.Principal{identityPrincipal(), {ID: groupOID, TenantID: testTenant, Type: keyhold.PrincipalGroup, DisplayName: "cmk identities"}} {
		if err := e.store.CreatePrincipal(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.store.AddGroupMember(ctx, groupOID, miOID); err != nil {
		t.Fatal(err)
	}
}

// softDeleteVault replaces a vault by a deleted-vault record, as the
// management plane's DELETE does.
func softDeleteVault(t *testing.T, e *unitEnv, name string) {
	t.Helper()
	ctx := context.Background()
	props, _ := json.Marshal(map[string]any{"vaultId": vaultID(name), "location": "westus",
		"deletionDate": start, "scheduledPurgeDate": start.Add(90 * 24 * time.Hour), "purgeProtectionEnabled": true})
	r := &keyhold.Resource{ID: keyvault.DeletedVaultID(testSub, "westus", name), SubscriptionID: testSub, Type: keyvault.DeletedVaultType,
		Name: name, Location: "westus", Properties: props}
	if err := e.store.PutResource(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := e.store.DeleteResource(ctx, vaultID(name)); err != nil {
		t.Fatal(err)
	}
}

func firstFailed(rep *keyvault.AccessReport) keyvault.AccessCheck {
	for _, c := range rep.Checks {
		if !c.OK {
			return c
		}
	}
	return keyvault.AccessCheck{}
}

func dump(rep *keyvault.AccessReport) string {
	var b strings.Builder
	for _, c := range rep.Checks {
		status := "PASS"
		if !c.OK {
			status = "FAIL"
		}
		fmt.Fprintf(&b, "  %s %s: %s\n", status, c.Name, c.Message)
	}
	return b.String()
}
