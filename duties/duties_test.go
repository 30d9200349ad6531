package duties_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/duties"
	"github.com/keyhold/keyhold/rbac"
	"github.com/keyhold/keyhold/sqlite"
)

const (
	tenant = "aaaaaaaa-0000-4000-8000-000000000000"
	other  = "bbbbbbbb-0000-4000-8000-000000000000"
	sub    = "00000000-0000-4000-8000-00000000000a"

	ppaID    = "aaaaaaaa-0000-4000-8000-000000000001" // Power Platform Administrator
	d365ID   = "aaaaaaaa-0000-4000-8000-000000000002" // Dynamics 365 Administrator
	gaID     = "aaaaaaaa-0000-4000-8000-000000000003" // Global and Power Platform Administrator
	plainID  = "aaaaaaaa-0000-4000-8000-000000000004" // no directory role
	appID    = "aaaaaaaa-0000-4000-8000-000000000005" // a service principal
	platID   = "aaaaaaaa-0000-4000-8000-0000000000f1" // group: ppa
	outerID  = "aaaaaaaa-0000-4000-8000-0000000000f2" // group: the platform group, nested
	emptyID  = "aaaaaaaa-0000-4000-8000-0000000000f3" // group: nobody
	kvGrpID  = "aaaaaaaa-0000-4000-8000-0000000000f4" // group: holds Key Vault Administrator on the vault
	childID  = "aaaaaaaa-0000-4000-8000-0000000000f5" // group: member of the key vault group
	strangID = "bbbbbbbb-0000-4000-8000-000000000001" // another tenant's Power Platform Administrator
)

var (
	subScope = "/subscriptions/" + sub
	rgScope  = subScope + "/resourceGroups/rg-kv"
	vaultID  = rgScope + "/providers/Microsoft.KeyVault/vaults/kv-contoso"
	keyScope = vaultID + "/keys/cmk"
	policyID = rgScope + "/providers/Microsoft.PowerPlatform/enterprisePolicies/cmk-policy"
)

func role(t *testing.T, name string) string {
	t.Helper()
	r, ok := rbac.RoleByName(name)
	if !ok {
		t.Fatalf("no role %q", name)
	}
	return r.ID
}

// fixture is a store with one tenant's directory, a subscription, a vault
// and an enterprise policy; the key vault group holds Key Vault
// Administrator on the vault.
type fixture struct {
	t     *testing.T
	ctx   context.Context
	store keyhold.Store
	n     int
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return newFixtureOn(t, st)
}

func newFixtureOn(t *testing.T, st keyhold.Store) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{t: t, ctx: ctx, store: st}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f.must(st.CreateTenant(ctx, &keyhold.Tenant{ID: tenant, DisplayName: "Contoso", DefaultDomain: "contoso.keyhold", CreatedAt: now}))
	f.must(st.CreateTenant(ctx, &keyhold.Tenant{ID: other, DisplayName: "Fabrikam", DefaultDomain: "fabrikam.keyhold", CreatedAt: now}))
	user := func(id, upn string, roles ...string) *keyhold.Principal {
		return &keyhold.Principal{ID: id, TenantID: tenant, Type: keyhold.PrincipalUser, DisplayName: upn, UserPrincipalName: upn + "@contoso.keyhold", DirectoryRoles: roles}
	}
	group := func(id, name string) *keyhold.Principal {
		return &keyhold.Principal{ID: id, TenantID: tenant, Type: keyhold.PrincipalGroup, DisplayName: name}
	}
	for _, p := range []*keyhold.Principal{
		user(ppaID, "ppadmin", keyhold.RolePowerPlatformAdministrator),
		user(d365ID, "d365admin", keyhold.RoleDynamics365Administrator),
		user(gaID, "admin", keyhold.RoleGlobalAdministrator, keyhold.RolePowerPlatformAdministrator),
		user(plainID, "kvadmin"),
		{ID: appID, TenantID: tenant, Type: keyhold.PrincipalServicePrincipal, DisplayName: "payments-app", AppID: "11111111-2222-4333-8444-555555555555"},
		group(platID, "Platform admins"), group(outerID, "All admins"), group(emptyID, "Nobody"),
		group(kvGrpID, "Vault admins"), group(childID, "Vault admins (EU)"),
		{ID: strangID, TenantID: other, Type: keyhold.PrincipalUser, DisplayName: "stranger", UserPrincipalName: "stranger@fabrikam.keyhold",
			DirectoryRoles: []string{keyhold.RolePowerPlatformAdministrator}},
	} {
		p.CreatedAt = now
		f.must(st.CreatePrincipal(ctx, p))
	}
	f.must(st.AddGroupMember(ctx, platID, ppaID))
	f.must(st.AddGroupMember(ctx, outerID, platID))
	f.must(st.AddGroupMember(ctx, kvGrpID, childID))
	f.must(st.CreateSubscription(ctx, &keyhold.Subscription{ID: sub, TenantID: tenant, DisplayName: "Contoso", State: "Enabled", CreatedAt: now}))
	f.must(st.PutResourceGroup(ctx, &keyhold.ResourceGroup{SubscriptionID: sub, Name: "rg-kv", Location: "westus"}))
	f.putVault(nil)
	f.must(st.PutResource(ctx, &keyhold.Resource{ID: policyID, SubscriptionID: sub, ResourceGroup: "rg-kv", Type: "Microsoft.PowerPlatform/enterprisePolicies",
		Name: "cmk-policy", Location: "unitedstates", Properties: json.RawMessage(`{}`)}))
	f.assign(kvGrpID, rbac.RoleKeyVaultAdministrator, vaultID)
	return f
}

func (f *fixture) must(err error) {
	f.t.Helper()
	if err != nil {
		f.t.Fatal(err)
	}
}

// putVault stores the vault with these access policies.
func (f *fixture) putVault(policies []duties.AccessPolicy) {
	f.t.Helper()
	type perms struct {
		Keys []string `json:"keys"`
	}
	type ap struct {
		TenantID    string `json:"tenantId"`
		ObjectID    string `json:"objectId"`
		Permissions perms  `json:"permissions"`
	}
	props := struct {
		TenantID       string `json:"tenantId"`
		AccessPolicies []ap   `json:"accessPolicies"`
	}{TenantID: tenant, AccessPolicies: []ap{}}
	for _, p := range policies {
		props.AccessPolicies = append(props.AccessPolicies, ap{TenantID: p.TenantID, ObjectID: p.ObjectID, Permissions: perms{Keys: p.Keys}})
	}
	b, _ := json.Marshal(props)
	f.must(f.store.PutResource(f.ctx, &keyhold.Resource{ID: vaultID, SubscriptionID: sub, ResourceGroup: "rg-kv", Type: duties.VaultType,
		Name: "kv-contoso", Location: "westus", Properties: b}))
}

// assign stores a role assignment, as a grant that was made before the
// setting was on.
func (f *fixture) assign(principalID, roleName, scope string) {
	f.t.Helper()
	p, err := f.store.GetPrincipal(f.ctx, principalID)
	f.must(err)
	f.must(f.store.CreateRoleAssignment(f.ctx, f.assignment(principalID, roleName, scope, p.Type)))
}

func (f *fixture) assignment(principalID, roleName, scope string, typ keyhold.PrincipalType) *keyhold.RoleAssignment {
	f.n++
	return &keyhold.RoleAssignment{
		Name: fmt.Sprintf("cccccccc-0000-4000-8000-%012d", f.n), TenantID: tenant, Scope: scope,
		RoleDefinitionID: role(f.t, roleName), PrincipalID: principalID, PrincipalType: typ,
	}
}

func (f *fixture) principal(id string) *keyhold.Principal {
	f.t.Helper()
	p, err := f.store.GetPrincipal(f.ctx, id)
	f.must(err)
	return p
}

// checker is a Checker with the tenant's setting on, or the server's flag.
func (f *fixture) checker(on, enforce bool) *duties.Checker {
	f.t.Helper()
	c := duties.New(duties.Config{Store: f.store, Enforce: enforce})
	b, _ := json.Marshal(duties.TenantSetting{Enabled: on})
	f.must(f.store.PutSetting(f.ctx, "duties/tenant/"+tenant, b))
	return c
}

// wantRefusal checks err against want: "" means allowed, anything else a
// SeparationOfDutiesViolation whose message contains each ;-separated part.
func wantRefusal(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	if keyhold.ErrorCode(err) != keyhold.EConflict || keyhold.ErrorDetail(err) != keyhold.DetailSeparationOfDuties {
		t.Fatalf("err = %v (%s/%s), want a %s conflict", err, keyhold.ErrorCode(err), keyhold.ErrorDetail(err), keyhold.DetailSeparationOfDuties)
	}
	for _, part := range strings.Split(want, "|") {
		if !strings.Contains(keyhold.ErrorMessage(err), part) {
			t.Errorf("message %q lacks %q", keyhold.ErrorMessage(err), part)
		}
	}
}

func TestCheckRoleAssignment(t *testing.T) {
	for _, tc := range []struct {
		name      string
		principal string
		role      string
		scope     string
		off       bool
		want      string
	}{
		{"platform admin, Key Vault Administrator on the vault", ppaID, rbac.RoleKeyVaultAdministrator, vaultID, false,
			"principal ppadmin@contoso.keyhold is a Power Platform Administrator; with separation of duties on, it may not also hold Key Vault Administrator on " + vaultID},
		{"Dynamics 365 admin, Crypto Officer on a key", d365ID, rbac.RoleKeyVaultCryptoOfficer, keyScope, false, "is a Dynamics 365 Administrator|Key Vault Crypto Officer on " + keyScope},
		{"platform admin, Owner of the resource group above the vault", ppaID, rbac.RoleOwner, rgScope, false, "Owner on " + rgScope},
		{"platform admin, Contributor on the subscription", ppaID, rbac.RoleContributor, subScope, false, "Contributor on " + subScope},
		{"platform admin, Key Vault Contributor on the vault", ppaID, rbac.RoleKeyVaultContributor, vaultID, false, "Key Vault Contributor"},
		{"group with a platform admin in it", platID, rbac.RoleKeyVaultAdministrator, vaultID, false, "principal ppadmin@contoso.keyhold|through group 'Platform admins'"},
		{"group with a platform admin two levels down", outerID, rbac.RoleOwner, vaultID, false, "ppadmin@contoso.keyhold|through group 'All admins'"},
		{"platform admin off", ppaID, rbac.RoleKeyVaultAdministrator, vaultID, true, ""},
		{"key vault admin without directory role", plainID, rbac.RoleKeyVaultAdministrator, vaultID, false, ""},
		{"Global Administrator is exempt", gaID, rbac.RoleKeyVaultAdministrator, vaultID, false, ""},
		{"application", appID, rbac.RoleKeyVaultAdministrator, vaultID, false, ""},
		{"empty group", emptyID, rbac.RoleKeyVaultAdministrator, vaultID, false, ""},
		{"platform admin, Reader on the policy", ppaID, rbac.RoleReader, policyID, false, ""},
		{"platform admin, Owner of the policy, which holds no vault", ppaID, rbac.RoleOwner, policyID, false, ""},
		{"platform admin, Crypto Service Encryption User on the vault", ppaID, rbac.RoleKeyVaultCryptoServiceEncryptionUser, vaultID, false, ""},
		{"platform admin, Key Vault Reader", ppaID, rbac.RoleKeyVaultReader, vaultID, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			c := f.checker(!tc.off, false)
			p := f.principal(tc.principal)
			err := f.store.InTx(f.ctx, func(tx keyhold.Store) error {
				a := f.assignment(tc.principal, tc.role, tc.scope, p.Type)
				if err := c.CheckRoleAssignment(f.ctx, tx, a); err != nil {
					return err
				}
				return tx.CreateRoleAssignment(f.ctx, a)
			})
			wantRefusal(t, err, tc.want)
		})
	}
}

func TestServerFlagEnforcesForEveryTenant(t *testing.T) {
	f := newFixture(t)
	c := f.checker(false, true)
	err := c.CheckRoleAssignment(f.ctx, f.store, f.assignment(ppaID, rbac.RoleKeyVaultAdministrator, vaultID, keyhold.PrincipalUser))
	wantRefusal(t, err, "is a Power Platform Administrator")
	var nilChecker *duties.Checker
	if err := nilChecker.CheckRoleAssignment(f.ctx, f.store, f.assignment(ppaID, rbac.RoleKeyVaultAdministrator, vaultID, keyhold.PrincipalUser)); err != nil {
		t.Errorf("a nil checker refused: %v", err)
	}
}

func TestCheckAccessPolicies(t *testing.T) {
	ap := func(oid string, keys ...string) duties.AccessPolicy {
		return duties.AccessPolicy{TenantID: tenant, ObjectID: oid, Keys: keys}
	}
	for _, tc := range []struct {
		name       string
		prev, next []duties.AccessPolicy
		want       string
	}{
		{"the CMK preset for a platform admin", nil, []duties.AccessPolicy{ap(ppaID, "get", "wrapKey", "unwrapKey")}, ""},
		{"every cryptographic operation", nil, []duties.AccessPolicy{ap(ppaID, "Get", "List", "Encrypt", "Decrypt", "Sign", "Verify", "GetRotationPolicy")}, ""},
		{"create for a platform admin", nil, []duties.AccessPolicy{ap(ppaID, "get", "Create")},
			"principal ppadmin@contoso.keyhold is a Power Platform Administrator; with separation of duties on, it may not also hold key management permissions (create) in an access policy of " + vaultID},
		{"all for a Dynamics 365 admin", nil, []duties.AccessPolicy{ap(d365ID, "all")}, "is a Dynamics 365 Administrator|(backup, create, delete, import, purge, recover, release, restore, rotate, setrotationpolicy, update)"},
		{"delete through a group", nil, []duties.AccessPolicy{ap(platID, "delete")}, "ppadmin@contoso.keyhold|through group 'Platform admins'"},
		{"purge added to an existing get", []duties.AccessPolicy{ap(ppaID, "get")}, []duties.AccessPolicy{ap(ppaID, "get", "purge")}, "(purge)"},
		{"an existing violation left as it is", []duties.AccessPolicy{ap(ppaID, "all")}, []duties.AccessPolicy{ap(ppaID, "all"), ap(appID, "get", "wrapKey", "unwrapKey")}, ""},
		{"an existing violation narrowed", []duties.AccessPolicy{ap(ppaID, "all")}, []duties.AccessPolicy{ap(ppaID, "get", "delete")}, ""},
		{"Global Administrator is exempt", nil, []duties.AccessPolicy{ap(gaID, "all")}, ""},
		{"key vault admin", nil, []duties.AccessPolicy{ap(plainID, "all")}, ""},
		{"an object the directory does not know", nil, []duties.AccessPolicy{ap("dddddddd-0000-4000-8000-000000000000", "all")}, ""},
		{"another tenant's platform admin", nil, []duties.AccessPolicy{{TenantID: other, ObjectID: strangID, Keys: []string{"all"}}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			c := f.checker(true, false)
			err := c.CheckAccessPolicies(f.ctx, f.store, tenant, vaultID, tc.prev, tc.next)
			wantRefusal(t, err, tc.want)
		})
	}
}

func TestCheckDirectoryRole(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(f *fixture)
		user  string
		role  string
		want  string
	}{
		{"no key vault right", nil, plainID, keyhold.RolePowerPlatformAdministrator, ""},
		{"Key Vault Administrator on the vault", func(f *fixture) { f.assign(plainID, rbac.RoleKeyVaultAdministrator, vaultID) }, plainID, keyhold.RolePowerPlatformAdministrator,
			"principal kvadmin@contoso.keyhold holds Key Vault Administrator on " + vaultID + "; with separation of duties on, it may not also be a Power Platform Administrator"},
		{"Owner of the subscription", func(f *fixture) { f.assign(plainID, rbac.RoleOwner, subScope) }, plainID, keyhold.RoleDynamics365Administrator,
			"holds Owner on " + subScope + "|be a Dynamics 365 Administrator"},
		{"through a nested group", func(f *fixture) { f.must(f.store.AddGroupMember(f.ctx, childID, plainID)) }, plainID, keyhold.RolePowerPlatformAdministrator,
			"holds Key Vault Administrator on " + vaultID + " through group 'Vault admins'"},
		{"an access policy with import", func(f *fixture) {
			f.putVault([]duties.AccessPolicy{{TenantID: tenant, ObjectID: plainID, Keys: []string{"get", "import"}}})
		}, plainID, keyhold.RolePowerPlatformAdministrator, "holds key management permissions (import) in an access policy of " + vaultID},
		{"an access policy with the CMK preset only", func(f *fixture) {
			f.putVault([]duties.AccessPolicy{{TenantID: tenant, ObjectID: plainID, Keys: []string{"get", "wrapKey", "unwrapKey"}}})
		}, plainID, keyhold.RolePowerPlatformAdministrator, ""},
		{"Reader on the policy", func(f *fixture) { f.assign(plainID, rbac.RoleReader, policyID) }, plainID, keyhold.RolePowerPlatformAdministrator, ""},
		{"Global Administrator role itself", func(f *fixture) { f.assign(plainID, rbac.RoleOwner, subScope) }, plainID, keyhold.RoleGlobalAdministrator, ""},
		{"a Global Administrator is exempt", func(f *fixture) { f.assign(gaID, rbac.RoleOwner, subScope) }, gaID, keyhold.RoleDynamics365Administrator, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if tc.setup != nil {
				tc.setup(f)
			}
			c := f.checker(true, false)
			u := f.principal(tc.user)
			u.DirectoryRoles = append(u.DirectoryRoles, tc.role)
			wantRefusal(t, c.CheckDirectoryRole(f.ctx, f.store, u, tc.role), tc.want)
		})
	}
}

func TestCheckGroupMember(t *testing.T) {
	for _, tc := range []struct {
		name          string
		group, member string
		want          string
	}{
		{"platform admin into the key vault group", kvGrpID, ppaID,
			"principal ppadmin@contoso.keyhold is a Power Platform Administrator; with separation of duties on, it may not also hold Key Vault Administrator on " + vaultID + " through group 'Vault admins'"},
		{"platform admin into a group inside the key vault group", childID, d365ID, "is a Dynamics 365 Administrator|through group 'Vault admins'"},
		{"a group of platform admins into the key vault group", kvGrpID, outerID, "ppadmin@contoso.keyhold"},
		{"key vault admin into the key vault group", kvGrpID, plainID, ""},
		{"Global Administrator into the key vault group", kvGrpID, gaID, ""},
		{"platform admin into a group without vault rights", emptyID, ppaID, ""},
		{"application into the key vault group", kvGrpID, appID, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			c := f.checker(true, false)
			wantRefusal(t, c.CheckGroupMember(f.ctx, f.store, f.principal(tc.group), f.principal(tc.member)), tc.want)
		})
	}
}

func TestStatusReportsExistingViolations(t *testing.T) {
	f := newFixture(t)
	c := f.checker(false, false)
	// Granted while the setting was off.
	f.assign(ppaID, rbac.RoleKeyVaultCryptoOfficer, vaultID)
	f.must(f.store.AddGroupMember(f.ctx, childID, d365ID))
	f.assign(gaID, rbac.RoleOwner, subScope)
	f.assign(plainID, rbac.RoleOwner, subScope)
	f.putVault([]duties.AccessPolicy{{TenantID: tenant, ObjectID: ppaID, Keys: []string{"get", "rotate"}}})

	st, err := c.Status(f.ctx, tenant)
	if err != nil {
		t.Fatal(err)
	}
	if st.Enabled || st.TenantSetting || st.ServerEnforced {
		t.Errorf("status = %+v, want off", st)
	}
	got := map[string][]string{}
	for _, h := range st.Violations {
		for _, a := range h.KeyVaultAccess {
			got[h.PrincipalName] = append(got[h.PrincipalName], a.Role+" "+strings.Join(a.Permissions, ",")+" "+a.Scope+" "+a.GroupName)
		}
	}
	want := map[string][]string{
		"d365admin@contoso.keyhold": {"Key Vault Administrator  " + vaultID + " Vault admins"},
		"ppadmin@contoso.keyhold":   {"Key Vault Crypto Officer  " + vaultID + " ", "Access policy rotate " + vaultID + " "},
	}
	if len(got) != len(want) {
		t.Errorf("violations = %v, want %v", got, want)
	}
	for k, w := range want {
		if strings.Join(got[k], "; ") != strings.Join(w, "; ") {
			t.Errorf("violations of %s = %q, want %q", k, got[k], w)
		}
	}
	if len(st.Exempt) != 1 || st.Exempt[0].PrincipalID != gaID || st.Exempt[0].KeyVaultAccess[0].Role != rbac.RoleOwner {
		t.Errorf("exempt = %+v, want the Global Administrator with Owner", st.Exempt)
	}
	if st.Violations[0].DirectoryRoles[0] != keyhold.RoleDynamics365Administrator {
		t.Errorf("directory roles = %v", st.Violations[0].DirectoryRoles)
	}
}
