package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resourcegraph/armresourcegraph"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/keyhold/keyhold"
)

// vaultClient returns an azkeys client for a vault of this server.
func (e *env) vaultClient(name string, cred azcore.TokenCredential) *azkeys.Client {
	e.TB.Helper()
	c, err := azkeys.NewClient(strings.Replace(e.Boot.VaultURLTemplate, "{name}", name, 1), cred, &azkeys.ClientOptions{
		ClientOptions: e.ClientOptions(), DisableChallengeResourceVerification: true,
	})
	if err != nil {
		e.TB.Fatal(err)
	}
	return c
}

// TestSeedPolicyWalk walks the seed's key vault administrator steps with the
// real clients: vault and key, provider and feature, the seed's own template
// (placeholders filled) deployed through armresources, the policy found by
// id and through Resource Graph with its identity, key access granted to that
// identity through armkeyvault, Reader on the policy for a Power Platform
// administrator through armauthorization; then health follows key access.
func TestSeedPolicyWalk(t *testing.T) {
	e := start(t, "")
	ctx := context.Background()
	sub, tenant := e.Boot.SubscriptionID, e.Boot.TenantID
	owner := e.ServicePrincipal()
	opts := e.ARMOptions()

	e.createGroup(t, "rg-cmk")
	e.registerPowerPlatform(t)

	// The vault, with soft delete and purge protection, and an RSA key.
	vaults, _ := armkeyvault.NewVaultsClient(sub, owner, opts)
	spOID := e.Server.Bootstrap().ServicePrincipalID
	poller, err := vaults.BeginCreateOrUpdate(ctx, "rg-cmk", "kv-contoso-cmk", armkeyvault.VaultCreateOrUpdateParameters{
		Location: to.Ptr("westus"),
		Properties: &armkeyvault.VaultProperties{
			TenantID:              to.Ptr(tenant),
			SKU:                   &armkeyvault.SKU{Family: to.Ptr(armkeyvault.SKUFamilyA), Name: to.Ptr(armkeyvault.SKUNameStandard)},
			EnableSoftDelete:      to.Ptr(true),
			EnablePurgeProtection: to.Ptr(true),
			AccessPolicies: []*armkeyvault.AccessPolicyEntry{{
				TenantID: to.Ptr(tenant), ObjectID: to.Ptr(spOID),
				Permissions: &armkeyvault.Permissions{Keys: []*armkeyvault.KeyPermissions{to.Ptr(armkeyvault.KeyPermissionsAll)}},
			}},
		},
	}, nil)
	if err != nil {
		t.Fatalf("create vault: %v", err)
	}
	vault, err := poller.PollUntilDone(ctx, fastPoll)
	if err != nil {
		t.Fatal(err)
	}
	keys := e.vaultClient("kv-contoso-cmk", owner)
	if _, err := keys.CreateKey(ctx, "cmk", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr(int32(2048))}, nil); err != nil {
		t.Fatalf("create key: %v", err)
	}

	// The seed's template, with its placeholders still in it, is refused
	// with the line and column; filled in, it deploys.
	seed := readSeedTemplate(t)
	deployments, _ := armresources.NewDeploymentsClient(sub, owner, opts)
	_, err = deployments.BeginCreateOrUpdate(ctx, "rg-cmk", "EPDeployment", armresources.Deployment{
		Properties: &armresources.DeploymentProperties{Mode: to.Ptr(armresources.DeploymentModeIncremental), Template: string(seed)},
	}, nil)
	if err == nil || !strings.Contains(err.Error(), "line 9, column") || !strings.Contains(err.Error(), "placeholders") {
		t.Fatalf("the seed's template with placeholders: %v, want a 400 naming line and column", err)
	}
	template := fillSeedTemplate(t, seed, "ep-contoso", *vault.ID)
	dp, err := deployments.BeginCreateOrUpdate(ctx, "rg-cmk", "EPDeployment", armresources.Deployment{
		Properties: &armresources.DeploymentProperties{Mode: to.Ptr(armresources.DeploymentModeIncremental), Template: template},
	}, nil)
	if err != nil {
		t.Fatalf("deploy: %v", err)
	}
	if d, err := dp.PollUntilDone(ctx, fastPoll); err != nil || *d.Properties.ProvisioningState != armresources.ProvisioningStateSucceeded {
		t.Fatalf("deployment: %v", err)
	}

	// The policy reads back through the generic get-by-id, with its identity.
	policyID := "/subscriptions/" + sub + "/resourceGroups/rg-cmk/providers/Microsoft.PowerPlatform/enterprisePolicies/ep-contoso"
	generic, _ := armresources.NewClient(sub, owner, opts)
	got, err := generic.GetByID(ctx, policyID, "2020-10-30", nil)
	if err != nil {
		t.Fatalf("get policy by id: %v", err)
	}
	if *got.Kind != "Encryption" || got.Identity == nil || got.Identity.PrincipalID == nil {
		t.Fatalf("policy = %+v", got.GenericResource)
	}
	principal := *got.Identity.PrincipalID

	// Resource Graph finds it, with its identity.
	graph, _ := armresourcegraph.NewClient(owner, opts)
	res, err := graph.Resources(ctx, armresourcegraph.QueryRequest{
		Query: to.Ptr("resources | where type =~ 'Microsoft.PowerPlatform/enterprisePolicies' | project id, name, identity.principalId"),
	}, nil)
	if err != nil {
		t.Fatalf("resource graph: %v", err)
	}
	rows, _ := res.Data.([]any)
	if len(rows) != 1 || rows[0].(map[string]any)["identity_principalId"] != principal {
		t.Fatalf("resource graph rows = %v, want the policy with principal %s", res.Data, principal)
	}

	// Reader on the policy for a Power Platform administrator.
	ppID, _ := e.CreateUser("ppadmin", "Pp-admin-password-42!", keyhold.RolePowerPlatformAdministrator)
	e.assignRole(t, policyID, readerRoleID, ppID)

	health := func() (string, string) {
		p, err := generic.GetByID(ctx, policyID, "2020-10-30", nil)
		if err != nil {
			t.Fatal(err)
		}
		props, _ := p.Properties.(map[string]any)
		status, _ := props["healthStatus"].(string)
		reason := ""
		if d, ok := props["healthDetail"].(map[string]any); ok {
			reason, _ = d["reason"].(string)
		}
		return status, reason
	}
	waitHealth := func(want string) string {
		t.Helper()
		var status, reason string
		waitFor(t, "health "+want, func() bool { status, reason = health(); return status == want })
		return reason
	}
	if status, _ := health(); status != "Unhealthy" && status != "Undetermined" {
		t.Fatalf("health before access is granted = %s", status)
	}

	// Grant the identity get, wrapKey and unwrapKey: Healthy.
	cmkPolicy := armkeyvault.VaultAccessPolicyParameters{Properties: &armkeyvault.VaultAccessPolicyProperties{
		AccessPolicies: []*armkeyvault.AccessPolicyEntry{{
			TenantID: to.Ptr(tenant), ObjectID: to.Ptr(principal),
			Permissions: &armkeyvault.Permissions{Keys: []*armkeyvault.KeyPermissions{
				to.Ptr(armkeyvault.KeyPermissionsGet), to.Ptr(armkeyvault.KeyPermissionsWrapKey), to.Ptr(armkeyvault.KeyPermissionsUnwrapKey)}},
		}},
	}}
	if _, err := vaults.UpdateAccessPolicy(ctx, "rg-cmk", "kv-contoso-cmk", armkeyvault.AccessPolicyUpdateKindAdd, cmkPolicy, nil); err != nil {
		t.Fatal(err)
	}
	waitHealth("Healthy")

	// Revoke: Unhealthy, with the reason in words; restore: Healthy.
	if _, err := vaults.UpdateAccessPolicy(ctx, "rg-cmk", "kv-contoso-cmk", armkeyvault.AccessPolicyUpdateKindRemove, cmkPolicy, nil); err != nil {
		t.Fatal(err)
	}
	if reason := waitHealth("Unhealthy"); !strings.Contains(reason, "kv-contoso-cmk") {
		t.Errorf("unhealthy reason = %q, want it to name the vault", reason)
	}
	if _, err := vaults.UpdateAccessPolicy(ctx, "rg-cmk", "kv-contoso-cmk", armkeyvault.AccessPolicyUpdateKindAdd, cmkPolicy, nil); err != nil {
		t.Fatal(err)
	}
	waitHealth("Healthy")

	// Disabling the key: Unhealthy; enabling it again: Healthy.
	if _, err := keys.UpdateKey(ctx, "cmk", "", azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(false)}}, nil); err != nil {
		t.Fatal(err)
	}
	waitHealth("Unhealthy")
	if _, err := keys.UpdateKey(ctx, "cmk", "", azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(true)}}, nil); err != nil {
		t.Fatal(err)
	}
	waitHealth("Healthy")

	// The Power Platform administrator may read the policy and nothing more.
	pp := e.User("ppadmin@"+e.Boot.AdminUsername[strings.IndexByte(e.Boot.AdminUsername, '@')+1:], "Pp-admin-password-42!")
	ppGeneric, _ := armresources.NewClient(sub, pp, opts)
	if _, err := ppGeneric.GetByID(ctx, policyID, "2020-10-30", nil); err != nil {
		t.Fatalf("Reader cannot read the policy: %v", err)
	}
	_, err = ppGeneric.BeginDeleteByID(ctx, policyID, "2020-10-30", nil)
	wantAzureError(t, err, http.StatusForbidden, "AuthorizationFailed")
}

var fastPoll = &runtime.PollUntilDoneOptions{Frequency: 100 * time.Millisecond}
