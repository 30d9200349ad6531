package e2e

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	"github.com/google/uuid"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/identity"
	"github.com/keyhold/keyhold/internal/testenv"
	"github.com/keyhold/keyhold/rbac"
	"github.com/keyhold/keyhold/server"
)

// dutiesStatus is the part of GET /keyhold/v1/separationOfDuties the test
// reads.
type dutiesStatus struct {
	Enabled        bool `json:"enabled"`
	TenantSetting  bool `json:"tenantSetting"`
	ServerEnforced bool `json:"serverEnforced"`
	Violations     []struct {
		PrincipalID    string `json:"principalId"`
		KeyVaultAccess []struct {
			Role        string   `json:"role"`
			Permissions []string `json:"permissions"`
			Scope       string   `json:"scope"`
		} `json:"keyVaultAccess"`
	} `json:"violations"`
	Exempt []struct {
		PrincipalID string `json:"principalId"`
	} `json:"exempt"`
}

// setDuties turns the tenant's separation of duties on or off as the Global
// Administrator and returns the status the server answers with.
func (e *env) setDuties(t *testing.T, on bool) dutiesStatus {
	t.Helper()
	var st dutiesStatus
	resp, b := e.Do(http.MethodPut, "/keyhold/v1/separationOfDuties", e.Token(e.Admin(), identity.AudienceManagement), map[string]bool{"enabled": on}, &st)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT separationOfDuties: %d %s", resp.StatusCode, b)
	}
	return st
}

// wantDutiesViolation checks that err is the SDK's ResponseError for a 409
// SeparationOfDutiesViolation whose message contains what.
func wantDutiesViolation(t *testing.T, err error, what string) {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want a 409 %s", err, keyhold.DetailSeparationOfDuties)
	}
	if re.StatusCode != http.StatusConflict || re.ErrorCode != keyhold.DetailSeparationOfDuties || !strings.Contains(re.Error(), what) {
		t.Fatalf("got %d %s (%v), want 409 %s saying %q", re.StatusCode, re.ErrorCode, err, keyhold.DetailSeparationOfDuties, what)
	}
}

// TestSeparationOfDuties drives separation of duties with the real
// armauthorization and armkeyvault clients: with the tenant's setting off,
// a Power Platform Administrator can be made Key Vault Administrator and
// be given key management permissions; turning the setting on revokes
// neither and reports both; then the same grants for another Power Platform
// Administrator are refused with 409 SeparationOfDutiesViolation (and the
// directory refuses the reverse grant), while the CMK preset still goes
// through; turning it off lets them through again.
func TestSeparationOfDuties(t *testing.T) {
	e := start(t, "")
	ctx := context.Background()
	sub, tenant := e.Boot.SubscriptionID, e.Boot.TenantID
	owner, opts := e.ServicePrincipal(), e.ARMOptions()

	e.createGroup(t, "rg-duties")
	vaultID := *e.createVault(t, "rg-duties", "kv-duties", false).ID
	vaults, _ := armkeyvault.NewVaultsClient(sub, owner, opts)

	assignments, _ := armauthorization.NewRoleAssignmentsClient(sub, owner, opts)
	kva, _ := rbac.RoleByName(rbac.RoleKeyVaultAdministrator)
	assignKVA := func(principalID string) error {
		_, err := assignments.Create(ctx, vaultID, uuid.NewString(), armauthorization.RoleAssignmentCreateParameters{
			Properties: &armauthorization.RoleAssignmentProperties{
				RoleDefinitionID: to.Ptr("/subscriptions/" + sub + "/providers/Microsoft.Authorization/roleDefinitions/" + kva.ID),
				PrincipalID:      to.Ptr(principalID), PrincipalType: to.Ptr(armauthorization.PrincipalTypeUser),
			},
		}, nil)
		return err
	}
	grantKeys := func(principalID string, perms ...armkeyvault.KeyPermissions) error {
		var keys []*armkeyvault.KeyPermissions
		for _, p := range perms {
			keys = append(keys, to.Ptr(p))
		}
		_, err := vaults.UpdateAccessPolicy(ctx, "rg-duties", "kv-duties", armkeyvault.AccessPolicyUpdateKindAdd, armkeyvault.VaultAccessPolicyParameters{
			Properties: &armkeyvault.VaultAccessPolicyProperties{AccessPolicies: []*armkeyvault.AccessPolicyEntry{{
				TenantID: to.Ptr(tenant), ObjectID: to.Ptr(principalID), Permissions: &armkeyvault.Permissions{Keys: keys}}}},
		}, nil)
		return err
	}

	// Off (the default): nothing is refused.
	first, firstUPN := e.CreateUser("ppadmin", "Platform-Admin-Pass-1", keyhold.RolePowerPlatformAdministrator)
	if err := assignKVA(first); err != nil {
		t.Fatalf("Key Vault Administrator for a platform admin with the setting off: %v", err)
	}
	if err := grantKeys(first, armkeyvault.KeyPermissionsCreate, armkeyvault.KeyPermissionsDelete); err != nil {
		t.Fatalf("key management permissions for a platform admin with the setting off: %v", err)
	}

	// On: the existing violations are reported, not revoked.
	st := e.setDuties(t, true)
	if !st.Enabled || !st.TenantSetting || st.ServerEnforced || len(st.Violations) != 1 || st.Violations[0].PrincipalID != first {
		t.Fatalf("status after turning it on = %+v, want %s as the one violation", st, firstUPN)
	}
	var kinds []string
	for _, a := range st.Violations[0].KeyVaultAccess {
		if a.Scope != vaultID {
			t.Errorf("reported scope %s, want %s", a.Scope, vaultID)
		}
		kinds = append(kinds, a.Role+" "+strings.Join(a.Permissions, ","))
	}
	if strings.Join(kinds, "; ") != "Key Vault Administrator ; Access policy create,delete" {
		t.Errorf("reported rights %q", kinds)
	}
	if len(st.Exempt) != 1 || st.Exempt[0].PrincipalID != e.Server.Bootstrap().AdminID {
		t.Errorf("exempt = %+v, want the Global Administrator (Owner of the subscription)", st.Exempt)
	}
	if _, err := e.Server.Store().GetResource(ctx, vaultID); err != nil {
		t.Fatal(err)
	}

	second, secondUPN := e.CreateUser("ppadmin2", "Platform-Admin-Pass-2", keyhold.RoleDynamics365Administrator)
	wantDutiesViolation(t, assignKVA(second),
		"principal "+secondUPN+" is a Dynamics 365 Administrator; with separation of duties on, it may not also hold Key Vault Administrator on "+vaultID)
	wantDutiesViolation(t, grantKeys(second, armkeyvault.KeyPermissionsGet, armkeyvault.KeyPermissionsPurge),
		"it may not also hold key management permissions (purge) in an access policy of "+vaultID)
	if err := grantKeys(second, armkeyvault.KeyPermissionsGet, armkeyvault.KeyPermissionsWrapKey, armkeyvault.KeyPermissionsUnwrapKey); err != nil {
		t.Errorf("the CMK preset for a platform admin: %v", err)
	}

	// The reverse: a key vault administrator may not become a platform
	// administrator; the directory answers in Graph's shape.
	kvAdmin, kvUPN := e.CreateUser("kvadmin", "Key-Vault-Admin-Pass-1")
	if err := assignKVA(kvAdmin); err != nil {
		t.Fatalf("Key Vault Administrator for a user without directory roles: %v", err)
	}
	var gerr struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	resp, b := e.Do(http.MethodPost, "/v1.0/directoryRoles/roleTemplateId="+keyhold.DirectoryRoles[keyhold.RolePowerPlatformAdministrator]+"/members/$ref",
		e.Token(e.Admin(), identity.AudienceGraph), map[string]any{"@odata.id": e.Boot.GraphEndpoint + "v1.0/directoryObjects/" + kvAdmin}, &gerr)
	if resp.StatusCode != http.StatusBadRequest || gerr.Error.Code != "Request_BadRequest" ||
		gerr.Error.Message != "SeparationOfDutiesViolation: principal "+kvUPN+" holds Key Vault Administrator on "+vaultID+"; with separation of duties on, it may not also be a Power Platform Administrator" {
		t.Errorf("Power Platform Administrator for a key vault admin: %d %s", resp.StatusCode, b)
	}

	// The refusals are in the audit log, as failed requests.
	var audit struct {
		Value []*keyhold.AuditRecord `json:"value"`
	}
	e.Do(http.MethodGet, "/keyhold/v1/audit?top=1000", e.Token(e.Admin(), identity.AudienceManagement), nil, &audit)
	refused := 0
	for _, r := range audit.Value {
		if r.Result == "Failed" && strings.Contains(r.Detail, keyhold.DetailSeparationOfDuties) {
			refused++
		}
	}
	if refused != 3 {
		t.Errorf("%d refused grants in the audit log, want 3", refused)
	}

	// Off again: the same grants go through.
	if st := e.setDuties(t, false); st.Enabled || len(st.Violations) != 1 {
		t.Errorf("status after turning it off = %+v", st)
	}
	if err := assignKVA(second); err != nil {
		t.Errorf("Key Vault Administrator with the setting off again: %v", err)
	}
	if err := grantKeys(second, armkeyvault.KeyPermissionsPurge); err != nil {
		t.Errorf("purge with the setting off again: %v", err)
	}
}

// TestSeparationOfDutiesServerFlag checks that serve --separation-of-duties
// enforces it in a tenant that never turned it on, and that the tenant
// cannot relax it.
func TestSeparationOfDutiesServerFlag(t *testing.T) {
	e := &env{testenv.Start(t, testenv.WithConfig(func(c *server.Config) { c.SeparationOfDuties = true }))}
	ctx := context.Background()
	sub := e.Boot.SubscriptionID
	if st := e.setDuties(t, false); !st.Enabled || st.TenantSetting || !st.ServerEnforced {
		t.Errorf("status with the server's flag, tenant setting off = %+v", st)
	}
	pp, upn := e.CreateUser("ppadmin", "Platform-Admin-Pass-1", keyhold.RolePowerPlatformAdministrator)
	assignments, _ := armauthorization.NewRoleAssignmentsClient(sub, e.ServicePrincipal(), e.ARMOptions())
	owner, _ := rbac.RoleByName(rbac.RoleOwner)
	_, err := assignments.Create(ctx, "/subscriptions/"+sub, uuid.NewString(), armauthorization.RoleAssignmentCreateParameters{
		Properties: &armauthorization.RoleAssignmentProperties{
			RoleDefinitionID: to.Ptr("/subscriptions/" + sub + "/providers/Microsoft.Authorization/roleDefinitions/" + owner.ID),
			PrincipalID:      to.Ptr(pp), PrincipalType: to.Ptr(armauthorization.PrincipalTypeUser),
		},
	}, nil)
	wantDutiesViolation(t, err, "principal "+upn+" is a Power Platform Administrator; with separation of duties on, it may not also hold Owner on /subscriptions/"+sub)
}
