// Package e2e holds end-to-end tests: a real keyhold server over TLS, driven
// by the real Azure SDK for Go clients, as a customer's tooling would.
package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	"github.com/google/uuid"

	"github.com/keyhold/keyhold/internal/testenv"
	"github.com/keyhold/keyhold/server"
)

// env is one running server and what a client needs to reach it; the
// embedding lets these tests add their own helpers.
type env struct{ *testenv.Env }

// start runs a server on a random port with its data in dir (a fresh
// temporary directory when dir is ""), its logs kept for secret scanning,
// a movable clock, and registrations that take long enough to be seen
// pending.
func start(t *testing.T, dir string) *env {
	t.Helper()
	return &env{testenv.Start(t, testenv.WithDir(dir), testenv.WithCapturedLogs(), testenv.WithClock(&testenv.Clock{}),
		testenv.WithConfig(func(c *server.Config) { c.RegistrationDelay = 50 * time.Millisecond }))}
}

// createVault creates vault name in group with armkeyvault as the bootstrap
// service principal, purge protection on and every key permission for that
// principal, with RBAC authorization when rbac is set.
func (e *env) createVault(t *testing.T, group, name string, rbac bool) *armkeyvault.Vault {
	t.Helper()
	tenant := e.Boot.TenantID
	vaults, _ := armkeyvault.NewVaultsClient(e.Boot.SubscriptionID, e.ServicePrincipal(), e.ARMOptions())
	p, err := vaults.BeginCreateOrUpdate(context.Background(), group, name, armkeyvault.VaultCreateOrUpdateParameters{
		Location: to.Ptr("westus"),
		Properties: &armkeyvault.VaultProperties{
			TenantID: to.Ptr(tenant), SKU: &armkeyvault.SKU{Family: to.Ptr(armkeyvault.SKUFamilyA), Name: to.Ptr(armkeyvault.SKUNameStandard)},
			EnablePurgeProtection: to.Ptr(true), EnableRbacAuthorization: to.Ptr(rbac),
			AccessPolicies: []*armkeyvault.AccessPolicyEntry{{TenantID: to.Ptr(tenant), ObjectID: to.Ptr(e.Server.Bootstrap().ServicePrincipalID),
				Permissions: &armkeyvault.Permissions{Keys: []*armkeyvault.KeyPermissions{to.Ptr(armkeyvault.KeyPermissionsAll)}}}},
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := p.PollUntilDone(context.Background(), fastPoll)
	if err != nil {
		t.Fatal(err)
	}
	return &v.Vault
}

// createGroup creates resource group name in westus in the bootstrap
// subscription, as the bootstrap service principal.
func (e *env) createGroup(t *testing.T, name string) {
	t.Helper()
	groups, _ := armresources.NewResourceGroupsClient(e.Boot.SubscriptionID, e.ServicePrincipal(), e.ARMOptions())
	if _, err := groups.CreateOrUpdate(context.Background(), name, armresources.ResourceGroup{Location: to.Ptr("westus")}, nil); err != nil {
		t.Fatal(err)
	}
}

// registerPowerPlatform registers Microsoft.PowerPlatform in the bootstrap
// subscription, as the bootstrap service principal, and waits until it is
// registered.
func (e *env) registerPowerPlatform(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	providers, _ := armresources.NewProvidersClient(e.Boot.SubscriptionID, e.ServicePrincipal(), e.ARMOptions())
	if _, err := providers.Register(ctx, "Microsoft.PowerPlatform", nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "provider registered", func() bool {
		p, err := providers.Get(ctx, "Microsoft.PowerPlatform", nil)
		return err == nil && *p.RegistrationState == "Registered"
	})
}

// assignRole gives principal the role (a role definition's GUID) at scope
// with armauthorization, as the bootstrap service principal.
func (e *env) assignRole(t *testing.T, scope, roleID, principal string) {
	t.Helper()
	sub := e.Boot.SubscriptionID
	assignments, _ := armauthorization.NewRoleAssignmentsClient(sub, e.ServicePrincipal(), e.ARMOptions())
	if _, err := assignments.Create(context.Background(), scope, uuid.NewString(), armauthorization.RoleAssignmentCreateParameters{
		Properties: &armauthorization.RoleAssignmentProperties{
			RoleDefinitionID: to.Ptr("/subscriptions/" + sub + "/providers/Microsoft.Authorization/roleDefinitions/" + roleID),
			PrincipalID:      to.Ptr(principal),
		},
	}, nil); err != nil {
		t.Fatalf("assign role %s at %s: %v", roleID, scope, err)
	}
}

// createEnvironment creates a managed environment of sku (Production,
// Sandbox) in unitedstates through the admin API as the holder of token,
// and returns its name.
func (e *env) createEnvironment(t *testing.T, token, displayName, sku string) string {
	t.Helper()
	var created struct {
		Name string `json:"name"`
	}
	if resp, b := e.Do("POST", bapEnvs+"?api-version=2020-10-01", token, map[string]any{"location": "unitedstates",
		"properties": map[string]any{"displayName": displayName, "environmentSku": sku, "isManaged": true}}, &created); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create environment: %d %s", resp.StatusCode, b)
	}
	return created.Name
}

// readSeedTemplate returns the seed's template as printed, placeholders in
// it.
func readSeedTemplate(t *testing.T) []byte {
	t.Helper()
	seed, err := os.ReadFile("../deploy/testdata/seed_template.json")
	if err != nil {
		t.Fatal(err)
	}
	return seed
}

// fillSeedTemplate fills the seed template's placeholders as its reader
// would: the policy's name, unitedstates, the vault's resource id, the key
// cmk and no key version.
func fillSeedTemplate(t *testing.T, seed []byte, policyName, vaultID string) map[string]any {
	t.Helper()
	filled := strings.NewReplacer(
		"{EnterprisePolicyName}", `"`+policyName+`"`,
		"{location where EnterprisePolicy needs to be created}", `"unitedstates"`,
		"{keyVaultId}", `"`+vaultID+`"`,
		"{keyName}", `"cmk"`,
		"{keyVersion}", `null`,
	).Replace(string(seed))
	var template map[string]any
	if err := json.Unmarshal([]byte(filled), &template); err != nil {
		t.Fatal(err)
	}
	return template
}
