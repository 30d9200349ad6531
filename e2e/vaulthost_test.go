package e2e

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/identity"
	"github.com/keyhold/keyhold/internal/testenv"
	"github.com/keyhold/keyhold/server"
)

// TestVaultHostSeedPolicy runs the seed's policy against a server with
// host-style vault URLs (serve --vault-domain): the vault's vaultUri is
// https://<vault>.vault.contoso.test:<port>/, the real azkeys client makes
// the key there with challenge resource verification on, the seed's
// template names the vault by its resource id as before, and the policy
// turns Healthy and takes an environment.
func TestVaultHostSeedPolicy(t *testing.T) {
	const domain = "vault.contoso.test"
	e := &env{testenv.Start(t, testenv.WithVaultDomain(domain),
		testenv.WithConfig(func(c *server.Config) { c.RegistrationDelay = 50 * time.Millisecond }))}
	ctx := context.Background()
	sub, tenant := e.Boot.SubscriptionID, e.Boot.TenantID
	owner, opts := e.ServicePrincipal(), e.ARMOptions()
	e.createGroup(t, "rg-host")
	e.registerPowerPlatform(t)

	v := e.createVault(t, "rg-host", "kv-host-cmk", false)
	u, _ := url.Parse(e.Server.URL())
	vaultURI := "https://kv-host-cmk." + domain + ":" + u.Port() + "/"
	if got := *v.Properties.VaultURI; got != vaultURI {
		t.Fatalf("vaultUri = %s, want %s", got, vaultURI)
	}
	keys, err := azkeys.NewClient(vaultURI, owner, &azkeys.ClientOptions{ClientOptions: e.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	created, err := keys.CreateKey(ctx, "cmk", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr(int32(2048))}, nil)
	if err != nil {
		t.Fatalf("create key at %s: %v", vaultURI, err)
	}
	if kid := created.Key.KID; kid.Name() != "cmk" || kid.Version() == "" || !strings.HasPrefix(string(*kid), vaultURI+"keys/cmk/") {
		t.Fatalf("kid %s: Name %q, Version %q", *kid, kid.Name(), kid.Version())
	}

	// The seed's template, keyVaultId the vault's resource id.
	seed := readSeedTemplate(t)
	template := fillSeedTemplate(t, seed, "ep-host", *v.ID)
	deployments, _ := armresources.NewDeploymentsClient(sub, owner, opts)
	dp, err := deployments.BeginCreateOrUpdate(ctx, "rg-host", "EPDeployment", armresources.Deployment{
		Properties: &armresources.DeploymentProperties{Mode: to.Ptr(armresources.DeploymentModeIncremental), Template: template},
	}, nil)
	if err != nil {
		t.Fatalf("deploy: %v", err)
	}
	if _, err := dp.PollUntilDone(ctx, fastPoll); err != nil {
		t.Fatalf("deployment: %v", err)
	}
	policyID := "/subscriptions/" + sub + "/resourceGroups/rg-host/providers/Microsoft.PowerPlatform/enterprisePolicies/ep-host"
	generic, _ := armresources.NewClient(sub, owner, opts)
	pol, err := generic.GetByID(ctx, policyID, "2020-10-30", nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &cmk{vault: "kv-host-cmk", policyID: policyID, principal: *pol.Identity.PrincipalID,
		systemID: pol.Properties.(map[string]any)["systemId"].(string)}
	c.access = armkeyvault.VaultAccessPolicyParameters{Properties: &armkeyvault.VaultAccessPolicyProperties{
		AccessPolicies: []*armkeyvault.AccessPolicyEntry{{TenantID: to.Ptr(tenant), ObjectID: to.Ptr(c.principal),
			Permissions: &armkeyvault.Permissions{Keys: []*armkeyvault.KeyPermissions{
				to.Ptr(armkeyvault.KeyPermissionsGet), to.Ptr(armkeyvault.KeyPermissionsWrapKey), to.Ptr(armkeyvault.KeyPermissionsUnwrapKey)}}}},
	}}
	e.setAccess(t, "rg-host", c, armkeyvault.AccessPolicyUpdateKindAdd)
	e.waitPolicyHealth(t, c, "Healthy")

	// A Power Platform administrator with Reader on the policy links an
	// environment to it.
	const ppPassword = "Pp-admin-password-42!"
	ppID, ppUPN := e.CreateUser("ppadmin", ppPassword, keyhold.RolePowerPlatformAdministrator)
	e.assignRole(t, policyID, readerRoleID, ppID)
	bap := e.Token(e.User(ppUPN, ppPassword), identity.AudiencePlatform)
	envID := e.createEnvironment(t, bap, "Host-style", "Sandbox")
	e.lifecycle(t, bap, envID, "link", c.systemID)
	var view struct {
		Properties struct {
			ProtectionStatus struct {
				KeyManagedBy string `json:"keyManagedBy"`
			} `json:"protectionStatus"`
			EnterprisePolicies struct {
				CustomerManagedKeys struct {
					ID string `json:"id"`
				} `json:"customerManagedKeys"`
			} `json:"enterprisePolicies"`
		} `json:"properties"`
	}
	e.Do("GET", bapEnvs+"/"+envID+"?api-version=2021-04-01", bap, nil, &view)
	if p := view.Properties; p.ProtectionStatus.KeyManagedBy != "Customer" || !strings.EqualFold(p.EnterprisePolicies.CustomerManagedKeys.ID, policyID) {
		t.Fatalf("environment after link: %+v, want keyManagedBy Customer under %s", p, policyID)
	}
}
