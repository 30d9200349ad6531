package storetest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

func testTenants(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	a := &keyhold.Tenant{ID: "tb", DisplayName: "B", DefaultDomain: "B.example", CreatedAt: t0}
	b := &keyhold.Tenant{ID: "ta", DisplayName: "A", DefaultDomain: "a.example", CreatedAt: t0.Add(time.Minute)}
	noDomain := &keyhold.Tenant{ID: "tc", DisplayName: "C"}
	noDomain2 := &keyhold.Tenant{ID: "td", DisplayName: "D"}
	for _, tn := range []*keyhold.Tenant{a, b, noDomain, noDomain2} {
		must(t, s.CreateTenant(ctx, tn))
	}
	got, err := s.GetTenant(ctx, "tb")
	must(t, err)
	same(t, "GetTenant", got, a)

	_, err = s.GetTenant(ctx, "nope")
	wantCode(t, "GetTenant(missing)", err, keyhold.ENotFound)
	if err != nil && !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("GetTenant(missing): %q does not name the tenant", err)
	}
	wantCode(t, "CreateTenant(same id)", s.CreateTenant(ctx, &keyhold.Tenant{ID: "ta"}), keyhold.EConflict)
	wantCode(t, "CreateTenant(same domain, other case)",
		s.CreateTenant(ctx, &keyhold.Tenant{ID: "tz", DefaultDomain: "b.EXAMPLE"}), keyhold.EConflict)
	wantCode(t, "CreateTenant(no id)", s.CreateTenant(ctx, &keyhold.Tenant{}), keyhold.EInvalid)

	list, err := s.ListTenants(ctx)
	must(t, err)
	same(t, "ListTenants", list, []*keyhold.Tenant{b, a, noDomain, noDomain2})
}

func testPrincipals(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	user := &keyhold.Principal{ID: "u1", TenantID: "t1", Type: keyhold.PrincipalUser, DisplayName: "Ann",
		UserPrincipalName: "Ann@Contoso.example", DirectoryRoles: []string{keyhold.RolePowerPlatformAdministrator},
		CreatedAt: t0}
	noRoles := &keyhold.Principal{ID: "u2", TenantID: "t1", Type: keyhold.PrincipalUser, DisplayName: "Bob",
		UserPrincipalName: "bob@contoso.example", DirectoryRoles: []string{}, Disabled: true, CreatedAt: t0}
	sp := &keyhold.Principal{ID: "sp1", TenantID: "t1", Type: keyhold.PrincipalServicePrincipal, DisplayName: "app",
		AppID: "app-1", CreatedAt: t0}
	mi := &keyhold.Principal{ID: "mi1", TenantID: "t1", Type: keyhold.PrincipalManagedIdentity, DisplayName: "policy",
		AppID: "app-2", ResourceID: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.PowerPlatform/enterprisePolicies/P",
		CreatedAt: t0}
	for _, p := range []*keyhold.Principal{user, noRoles, sp, mi} {
		must(t, s.CreatePrincipal(ctx, p))
	}
	for _, want := range []*keyhold.Principal{user, noRoles, sp, mi} {
		got, err := s.GetPrincipal(ctx, want.ID)
		must(t, err)
		same(t, "GetPrincipal("+want.ID+")", got, want)
	}

	tests := []struct {
		name string
		p    *keyhold.Principal
		code string
	}{
		{"same id", &keyhold.Principal{ID: "u1", TenantID: "t1", Type: keyhold.PrincipalUser}, keyhold.EConflict},
		{"same upn other case", &keyhold.Principal{ID: "u9", TenantID: "t1", Type: keyhold.PrincipalUser,
			UserPrincipalName: "ANN@contoso.EXAMPLE"}, keyhold.EConflict},
		{"same app id", &keyhold.Principal{ID: "sp9", TenantID: "t1", Type: keyhold.PrincipalServicePrincipal,
			AppID: "app-1"}, keyhold.EConflict},
		{"no id", &keyhold.Principal{TenantID: "t1", Type: keyhold.PrincipalUser}, keyhold.EInvalid},
		{"no tenant", &keyhold.Principal{ID: "x", Type: keyhold.PrincipalUser}, keyhold.EInvalid},
		{"no type", &keyhold.Principal{ID: "x", TenantID: "t1"}, keyhold.EInvalid},
	}
	for _, tt := range tests {
		wantCode(t, "CreatePrincipal("+tt.name+")", s.CreatePrincipal(ctx, tt.p), tt.code)
	}
	// Principals without a UPN or app id do not collide on the empty value.
	must(t, s.CreatePrincipal(ctx, &keyhold.Principal{ID: "g1", TenantID: "t1", Type: keyhold.PrincipalGroup}))
	must(t, s.CreatePrincipal(ctx, &keyhold.Principal{ID: "g2", TenantID: "t1", Type: keyhold.PrincipalGroup}))

	_, err := s.GetPrincipal(ctx, "missing")
	wantCode(t, "GetPrincipal(missing)", err, keyhold.ENotFound)

	// UpdatePrincipal changes the mutable fields only.
	upd := *user
	upd.DisplayName = "Ann B."
	upd.DirectoryRoles = []string{keyhold.RoleGlobalAdministrator, keyhold.RoleDynamics365Administrator}
	upd.Disabled = true
	upd.UserPrincipalName = "changed@contoso.example"
	upd.TenantID = "other"
	must(t, s.UpdatePrincipal(ctx, &upd))
	got, err := s.GetPrincipal(ctx, "u1")
	must(t, err)
	want := *user
	want.DisplayName, want.DirectoryRoles, want.Disabled = upd.DisplayName, upd.DirectoryRoles, true
	same(t, "after UpdatePrincipal", got, &want)
	wantCode(t, "UpdatePrincipal(missing)", s.UpdatePrincipal(ctx, &keyhold.Principal{ID: "missing"}), keyhold.ENotFound)

	must(t, s.DeletePrincipal(ctx, "u2"))
	_, err = s.GetPrincipal(ctx, "u2")
	wantCode(t, "GetPrincipal(deleted)", err, keyhold.ENotFound)
	wantCode(t, "DeletePrincipal(again)", s.DeletePrincipal(ctx, "u2"), keyhold.ENotFound)
	// The UPN of a deleted user is free again.
	must(t, s.CreatePrincipal(ctx, &keyhold.Principal{ID: "u3", TenantID: "t1", Type: keyhold.PrincipalUser,
		UserPrincipalName: "Bob@contoso.example"}))
}

func testFindPrincipals(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	rid := "/subscriptions/s/resourceGroups/rg/providers/Microsoft.PowerPlatform/enterprisePolicies/Policy1"
	ps := []*keyhold.Principal{
		{ID: "a", TenantID: "t1", Type: keyhold.PrincipalUser, UserPrincipalName: "Ann@contoso.example"},
		{ID: "b", TenantID: "t1", Type: keyhold.PrincipalServicePrincipal, AppID: "app-b"},
		{ID: "c", TenantID: "t1", Type: keyhold.PrincipalManagedIdentity, AppID: "app-c", ResourceID: rid},
		{ID: "d", TenantID: "t2", Type: keyhold.PrincipalUser, UserPrincipalName: "dan@fabrikam.example"},
		{ID: "e", TenantID: "t2", Type: keyhold.PrincipalGroup},
	}
	for _, p := range ps {
		must(t, s.CreatePrincipal(ctx, p))
	}
	ids := func(list []*keyhold.Principal) []string {
		out := []string{}
		for _, p := range list {
			out = append(out, p.ID)
		}
		return out
	}
	tests := []struct {
		name string
		f    keyhold.PrincipalFilter
		want []string
	}{
		{"all", keyhold.PrincipalFilter{}, []string{"a", "b", "c", "d", "e"}},
		{"tenant", keyhold.PrincipalFilter{TenantID: "t2"}, []string{"d", "e"}},
		{"type", keyhold.PrincipalFilter{Type: keyhold.PrincipalUser}, []string{"a", "d"}},
		{"tenant and type", keyhold.PrincipalFilter{TenantID: "t1", Type: keyhold.PrincipalUser}, []string{"a"}},
		{"upn any case", keyhold.PrincipalFilter{UserPrincipalName: "ANN@CONTOSO.example"}, []string{"a"}},
		{"upn wrong tenant", keyhold.PrincipalFilter{TenantID: "t2", UserPrincipalName: "ann@contoso.example"}, []string{}},
		{"app id", keyhold.PrincipalFilter{AppID: "app-c"}, []string{"c"}},
		{"resource id any case", keyhold.PrincipalFilter{ResourceID: strings.ToUpper(rid)}, []string{"c"}},
		{"no match", keyhold.PrincipalFilter{AppID: "nope"}, []string{}},
	}
	for _, tt := range tests {
		got, err := s.FindPrincipals(ctx, tt.f)
		must(t, err)
		same(t, "FindPrincipals("+tt.name+")", ids(got), tt.want)
	}
}

func testDeletePrincipalCascades(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	for _, p := range []*keyhold.Principal{
		{ID: "u1", TenantID: "t1", Type: keyhold.PrincipalUser},
		{ID: "u2", TenantID: "t1", Type: keyhold.PrincipalUser},
		{ID: "g1", TenantID: "t1", Type: keyhold.PrincipalGroup},
		{ID: "g2", TenantID: "t1", Type: keyhold.PrincipalGroup},
	} {
		must(t, s.CreatePrincipal(ctx, p))
	}
	must(t, s.AddCredential(ctx, &keyhold.Credential{ID: "c1", PrincipalID: "u1", Kind: keyhold.CredentialPassword, Hash: "h"}))
	must(t, s.AddCredential(ctx, &keyhold.Credential{ID: "c2", PrincipalID: "u2", Kind: keyhold.CredentialPassword, Hash: "h"}))
	must(t, s.AddGroupMember(ctx, "g1", "u1"))
	must(t, s.AddGroupMember(ctx, "g1", "u2"))
	must(t, s.AddGroupMember(ctx, "g2", "g1"))
	for _, a := range []*keyhold.RoleAssignment{
		{Name: "ra1", TenantID: "t1", Scope: "/subscriptions/s", RoleDefinitionID: "r", PrincipalID: "u1"},
		{Name: "ra2", TenantID: "t1", Scope: "/subscriptions/s", RoleDefinitionID: "r", PrincipalID: "u2"},
		{Name: "ra3", TenantID: "t1", Scope: "/subscriptions/s", RoleDefinitionID: "r", PrincipalID: "g1"},
	} {
		must(t, s.CreateRoleAssignment(ctx, a))
	}

	must(t, s.DeletePrincipal(ctx, "u1"))
	creds, err := s.ListCredentials(ctx, "u1")
	must(t, err)
	same(t, "credentials of deleted", len(creds), 0)
	creds, err = s.ListCredentials(ctx, "u2")
	must(t, err)
	same(t, "credentials of other", len(creds), 1)
	members, err := s.ListGroupMembers(ctx, "g1")
	must(t, err)
	same(t, "members after deleting a member", members, []string{"u2"})
	_, err = s.GetRoleAssignment(ctx, "ra1")
	wantCode(t, "role assignment of deleted", err, keyhold.ENotFound)
	_, err = s.GetRoleAssignment(ctx, "ra2")
	must(t, err)

	// Deleting a group removes its memberships on both sides.
	must(t, s.DeletePrincipal(ctx, "g1"))
	groups, err := s.ListMemberships(ctx, "u2")
	must(t, err)
	same(t, "memberships after deleting the group", groups, []string{})
	members, err = s.ListGroupMembers(ctx, "g2")
	must(t, err)
	same(t, "members of the parent group", members, []string{})
	_, err = s.GetRoleAssignment(ctx, "ra3")
	wantCode(t, "role assignment of deleted group", err, keyhold.ENotFound)
}

func testCredentials(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	must(t, s.CreatePrincipal(ctx, &keyhold.Principal{ID: "sp", TenantID: "t1", Type: keyhold.PrincipalServicePrincipal}))
	c1 := &keyhold.Credential{ID: "c1", PrincipalID: "sp", Kind: keyhold.CredentialClientSecret, Hash: "$pbkdf2$1",
		Hint: "abc", CreatedAt: t0, ExpiresAt: t0.Add(24 * time.Hour)}
	c2 := &keyhold.Credential{ID: "c2", PrincipalID: "sp", Kind: keyhold.CredentialClientSecret, Hash: "$pbkdf2$2",
		CreatedAt: t0.Add(time.Second)} // no expiry: the zero time must come back zero
	c0 := &keyhold.Credential{ID: "c0", PrincipalID: "sp", Kind: keyhold.CredentialClientSecret, Hash: "$pbkdf2$0",
		CreatedAt: t0.Add(-time.Second)}
	for _, c := range []*keyhold.Credential{c1, c2, c0} {
		must(t, s.AddCredential(ctx, c))
	}
	got, err := s.ListCredentials(ctx, "sp")
	must(t, err)
	same(t, "ListCredentials (oldest first)", got, []*keyhold.Credential{c0, c1, c2})
	if !got[2].ExpiresAt.IsZero() {
		t.Errorf("ExpiresAt of a credential without expiry: got %v, want zero", got[2].ExpiresAt)
	}

	wantCode(t, "AddCredential(same id)", s.AddCredential(ctx, &keyhold.Credential{ID: "c1", PrincipalID: "sp", Hash: "h"}), keyhold.EConflict)
	wantCode(t, "AddCredential(no principal)", s.AddCredential(ctx, &keyhold.Credential{ID: "c9", PrincipalID: "nobody", Hash: "h"}), keyhold.ENotFound)
	wantCode(t, "AddCredential(no hash)", s.AddCredential(ctx, &keyhold.Credential{ID: "c9", PrincipalID: "sp"}), keyhold.EInvalid)

	must(t, s.DeleteCredential(ctx, "sp", "c1"))
	wantCode(t, "DeleteCredential(again)", s.DeleteCredential(ctx, "sp", "c1"), keyhold.ENotFound)
	wantCode(t, "DeleteCredential(other principal)", s.DeleteCredential(ctx, "other", "c2"), keyhold.ENotFound)
	got, err = s.ListCredentials(ctx, "sp")
	must(t, err)
	same(t, "ListCredentials after delete", got, []*keyhold.Credential{c0, c2})
	got, err = s.ListCredentials(ctx, "nobody")
	must(t, err)
	same(t, "ListCredentials(unknown)", len(got), 0)
}

func testGroupMembers(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	for _, p := range []*keyhold.Principal{
		{ID: "g1", TenantID: "t1", Type: keyhold.PrincipalGroup},
		{ID: "g2", TenantID: "t1", Type: keyhold.PrincipalGroup},
		{ID: "u1", TenantID: "t1", Type: keyhold.PrincipalUser},
		{ID: "u2", TenantID: "t1", Type: keyhold.PrincipalUser},
	} {
		must(t, s.CreatePrincipal(ctx, p))
	}
	must(t, s.AddGroupMember(ctx, "g1", "u2"))
	must(t, s.AddGroupMember(ctx, "g1", "u1"))
	must(t, s.AddGroupMember(ctx, "g2", "u1"))
	must(t, s.AddGroupMember(ctx, "g2", "g1"))

	tests := []struct {
		name          string
		group, member string
		code          string
	}{
		{"twice", "g1", "u1", keyhold.EConflict},
		{"not a group", "u1", "u2", keyhold.EInvalid},
		{"itself", "g1", "g1", keyhold.EInvalid},
		{"missing group", "g9", "u1", keyhold.ENotFound},
		{"missing member", "g1", "u9", keyhold.ENotFound},
	}
	for _, tt := range tests {
		wantCode(t, "AddGroupMember("+tt.name+")", s.AddGroupMember(ctx, tt.group, tt.member), tt.code)
	}

	members, err := s.ListGroupMembers(ctx, "g1")
	must(t, err)
	same(t, "ListGroupMembers(g1)", members, []string{"u1", "u2"})
	groups, err := s.ListMemberships(ctx, "u1")
	must(t, err)
	same(t, "ListMemberships(u1)", groups, []string{"g1", "g2"})
	groups, err = s.ListMemberships(ctx, "g1")
	must(t, err)
	same(t, "ListMemberships(g1)", groups, []string{"g2"})

	must(t, s.RemoveGroupMember(ctx, "g1", "u1"))
	wantCode(t, "RemoveGroupMember(again)", s.RemoveGroupMember(ctx, "g1", "u1"), keyhold.ENotFound)
	members, err = s.ListGroupMembers(ctx, "g1")
	must(t, err)
	same(t, "ListGroupMembers after remove", members, []string{"u2"})
}
