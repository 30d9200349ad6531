package identity

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/duties"
	"github.com/keyhold/keyhold/rbac"
)

// TestGraphSeparationOfDuties checks the two directory grants against
// separation of duties: a platform role for a user with a key vault role,
// and a membership that brings a group's key vault role to a platform
// administrator, are refused in Graph's shape (400 Request_BadRequest with
// SeparationOfDutiesViolation leading the message) and change nothing.
func TestGraphSeparationOfDuties(t *testing.T) {
	e := newEnv(t)
	e.svc.duties = duties.New(duties.Config{Store: e.store, Enforce: true})
	ctx := context.Background()
	ga := e.user("admin@"+testDomain, keyhold.RoleGlobalAdministrator)
	kv := e.user("kvadmin@" + testDomain)
	pp := e.user("ppadmin@"+testDomain, keyhold.RolePowerPlatformAdministrator)
	plain := e.user("pat@" + testDomain)
	vaults, err := e.svc.CreateGroup(ctx, testTenant, "Vault admins")
	if err != nil {
		t.Fatal(err)
	}
	empty, err := e.svc.CreateGroup(ctx, testTenant, "Readers")
	if err != nil {
		t.Fatal(err)
	}
	const sub = "/subscriptions/0b0b0b0b-0000-4000-8000-000000000001"
	vault := sub + "/resourceGroups/rg-kv/providers/Microsoft.KeyVault/vaults/kv-contoso"
	for i, a := range []struct{ principal, role, scope string }{
		{kv.ID, rbac.RoleOwner, sub},
		{vaults.ID, rbac.RoleKeyVaultAdministrator, vault},
	} {
		r, _ := rbac.RoleByName(a.role)
		if err := e.store.CreateRoleAssignment(ctx, &keyhold.RoleAssignment{Name: "0c0c0c0c-0000-4000-8000-00000000000" + string(rune('1'+i)), TenantID: testTenant,
			Scope: a.scope, RoleDefinitionID: r.ID, PrincipalID: a.principal, CreatedAt: time.Now(), UpdatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	tok := e.token(ga, AudienceGraph)
	ref := func(id string) map[string]any {
		return map[string]any{"@odata.id": "https://graph.keyhold.internal/v1.0/directoryObjects/" + id}
	}
	ppaRole := "/v1.0/directoryRoles/" + keyhold.DirectoryRoles[keyhold.RolePowerPlatformAdministrator] + "/members/$ref"
	d365Role := "/v1.0/directoryRoles/roleTemplateId=" + keyhold.DirectoryRoles[keyhold.RoleDynamics365Administrator] + "/members/$ref"
	gaRole := "/v1.0/directoryRoles/" + keyhold.DirectoryRoles[keyhold.RoleGlobalAdministrator] + "/members/$ref"
	for _, tc := range []struct {
		name, path, member string
		status             int
		message            string
	}{
		{"Power Platform Administrator for the subscription's Owner", ppaRole, kv.ID, 400,
			"SeparationOfDutiesViolation: principal kvadmin@" + testDomain + " holds Owner on " + sub + "; with separation of duties on, it may not also be a Power Platform Administrator"},
		{"platform admin into the vault admins' group", "/v1.0/groups/" + vaults.ID + "/members/$ref", pp.ID, 400,
			"SeparationOfDutiesViolation: principal ppadmin@" + testDomain + " is a Power Platform Administrator; with separation of duties on, it may not also hold Key Vault Administrator on " + vault + " through group 'Vault admins'"},
		{"Global Administrator for the Owner", gaRole, kv.ID, 204, ""},
		{"Dynamics 365 Administrator for a user without vault rights", d365Role, plain.ID, 204, ""},
		{"platform admin into a group without vault rights", "/v1.0/groups/" + empty.ID + "/members/$ref", pp.ID, 204, ""},
		{"that group into the vault admins' group", "/v1.0/groups/" + vaults.ID + "/members/$ref", empty.ID, 400,
			"SeparationOfDutiesViolation: principal ppadmin@" + testDomain + " is a Power Platform Administrator"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, body := e.do("POST", tc.path, tok, ref(tc.member))
			if st != tc.status {
				t.Fatalf("status %d, want %d: %v", st, tc.status, body)
			}
			if tc.status != 400 {
				return
			}
			msg, _ := body["error"].(map[string]any)["message"].(string)
			if graphCode(body) != graphBadRequest || !strings.HasPrefix(msg, tc.message) {
				t.Errorf("got %s %q, want %s %q", graphCode(body), msg, graphBadRequest, tc.message)
			}
		})
	}
	// The refused grants left nothing behind; the Owner is now a Global
	// Administrator, which is exempt.
	got, err := e.store.GetPrincipal(ctx, kv.ID)
	if err != nil || got.HasDirectoryRole(keyhold.RolePowerPlatformAdministrator) || !got.HasDirectoryRole(keyhold.RoleGlobalAdministrator) {
		t.Errorf("roles of the Owner = %v, %v", got.DirectoryRoles, err)
	}
	members, err := e.store.ListGroupMembers(ctx, vaults.ID)
	if err != nil || len(members) != 0 {
		t.Errorf("members of the vault admins' group = %v, %v", members, err)
	}
	st, _ := e.do("POST", ppaRole, tok, ref(kv.ID))
	if st != 204 {
		t.Errorf("a Global Administrator with Owner becoming a Power Platform Administrator: %d, want 204 (exempt)", st)
	}
}
