package arm

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/duties"
	"github.com/keyhold/keyhold/rbac"
)

// TestRoleAssignmentSeparationOfDuties checks that, with separation of
// duties on, a role assignment that would make a platform administrator a
// key vault administrator is refused with 409 SeparationOfDutiesViolation
// and not stored, while other assignments go through.
func TestRoleAssignmentSeparationOfDuties(t *testing.T) {
	e := newEnv(t)
	e.srv.duties = duties.New(duties.Config{Store: e.store, Enforce: true})
	ctx := context.Background()
	e.mustStatus(e.do(ownerID, http.MethodPut, groupPath, map[string]any{"location": "westeurope"}), 201)
	// readerID is a Power Platform Administrator, and nobodyID, a member of
	// groupID, a Dynamics 365 Administrator.
	for id, r := range map[string]string{readerID: keyhold.RolePowerPlatformAdministrator, nobodyID: keyhold.RoleDynamics365Administrator} {
		p, err := e.store.GetPrincipal(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		p.DirectoryRoles = []string{r}
		if err := e.store.UpdatePrincipal(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	kva, _ := rbac.RoleByName(rbac.RoleKeyVaultAdministrator)
	owner, _ := rbac.RoleByName(rbac.RoleOwner)
	reader, _ := rbac.RoleByName(rbac.RoleReader)
	for i, tc := range []struct {
		name, role, principal, scope string
		status                       int
		message                      string
	}{
		{"Key Vault Administrator for a Power Platform Administrator", kva.ID, readerID, groupPath, 409,
			"principal reader@contoso.keyhold is a Power Platform Administrator; with separation of duties on, it may not also hold Key Vault Administrator on " + groupPath},
		{"Owner of the subscription for a group with a Dynamics 365 Administrator", owner.ID, groupID, subPath, 409,
			"principal nobody@contoso.keyhold is a Dynamics 365 Administrator; with separation of duties on, it may not also hold Owner on " + subPath + " through group 'Vault admins'"},
		{"Reader for a Power Platform Administrator", reader.ID, readerID, groupPath, 201, ""},
		{"Key Vault Administrator for an application", kva.ID, appID, groupPath, 201, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "5d000000-0000-0000-0000-00000000000" + string(rune('1'+i))
			r := e.do(ownerID, http.MethodPut, raPath(tc.scope, name), raBody(tc.role, tc.principal))
			if r.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tc.status, r.Body)
			}
			_, err := e.store.GetRoleAssignment(ctx, name)
			if tc.status != 409 {
				if err != nil {
					t.Errorf("the allowed assignment was not stored: %v", err)
				}
				return
			}
			if r.code(t) != keyhold.DetailSeparationOfDuties || r.Header.Get("x-ms-error-code") != keyhold.DetailSeparationOfDuties || r.message(t) != tc.message {
				t.Errorf("got %s %q, want %s %q", r.code(t), r.message(t), keyhold.DetailSeparationOfDuties, tc.message)
			}
			if !keyhold.IsNotFound(err) {
				t.Errorf("the refused assignment was stored (%v)", err)
			}
			if info := e.lastInfo(); info.Action != actionAssignmentWrite || !strings.Contains(info.Detail, keyhold.DetailSeparationOfDuties) {
				t.Errorf("audit annotation = %+v", info)
			}
		})
	}
}
