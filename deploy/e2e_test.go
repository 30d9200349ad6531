package deploy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azarm "github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/internal/testenv"
	"github.com/keyhold/keyhold/rbac"
)

// e2e is a real server over TLS and what the Azure SDK needs to reach it.
type e2e struct {
	*testenv.Env
	cred azcore.TokenCredential // the bootstrap service principal's
	sub  string
}

func startServer(t *testing.T) *e2e {
	t.Helper()
	e := &e2e{Env: testenv.Start(t)}
	e.cred = e.ServicePrincipal()
	e.sub = e.Boot.SubscriptionID
	return e
}

func (e *e2e) opts() *azarm.ClientOptions { return e.ARMOptions() }

func (e *e2e) deployments(cred azcore.TokenCredential) *armresources.DeploymentsClient {
	c, err := armresources.NewDeploymentsClient(e.sub, cred, e.opts())
	if err != nil {
		e.TB.Fatal(err)
	}
	return c
}

// user creates a user holding role on scope and returns its credential.
func (e *e2e) user(name, role, scope string, dirRoles ...string) (*keyhold.Principal, azcore.TokenCredential) {
	e.TB.Helper()
	ctx := context.Background()
	domain := e.Domain()
	pw := "Correct-Horse-9-Battery!"
	p, err := e.Server.Identity().CreateUser(ctx, e.Boot.TenantID, name+"@"+domain, name, keyhold.NewSecret([]byte(pw)), dirRoles)
	if err != nil {
		e.TB.Fatal(err)
	}
	if role != "" {
		def, _ := rbac.RoleByName(role)
		now := time.Now().UTC()
		if err := e.Server.Store().CreateRoleAssignment(ctx, &keyhold.RoleAssignment{Name: newGUID(name), TenantID: e.Boot.TenantID, Scope: scope,
			RoleDefinitionID: def.ID, PrincipalID: p.ID, PrincipalType: keyhold.PrincipalUser, CreatedAt: now, UpdatedAt: now}); err != nil {
			e.TB.Fatal(err)
		}
	}
	return p, e.User(name+"@"+domain, pw)
}

// newGUID is a fixed GUID per name, for role assignment names.
func newGUID(name string) string {
	return fmt.Sprintf("%08x-0000-4000-8000-%012x", crc32.ChecksumIEEE([]byte(name)), len(name))
}

var poll = &runtime.PollUntilDoneOptions{Frequency: 50 * time.Millisecond}

func wantResponseError(t *testing.T, err error, status int, code string) *azcore.ResponseError {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("error %v is not a ResponseError, want %d %s", err, status, code)
	}
	if re.StatusCode != status || re.ErrorCode != code {
		t.Fatalf("error = %d %s, want %d %s: %v", re.StatusCode, re.ErrorCode, status, code, err)
	}
	return re
}

func readSeed(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("testdata/seed_template.json")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSeedTemplateThroughArmresources walks the seed: the template as
// printed (placeholders in it) gets a 400 with line and column; filled in,
// it deploys through BeginCreateOrUpdate and PollUntilDone, and the policy
// reads back with its identity; a second template grants that identity
// get, wrapKey and unwrapKey on the vault and a Power Platform
// administrator Reader on the policy.
func TestSeedTemplateThroughArmresources(t *testing.T) {
	e := startServer(t)
	ctx := context.Background()
	groups, err := armresources.NewResourceGroupsClient(e.sub, e.cred, e.opts())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := groups.CreateOrUpdate(ctx, "rg-cmk", armresources.ResourceGroup{Location: to.Ptr("westus")}, nil); err != nil {
		t.Fatal(err)
	}
	providers, err := armresources.NewProvidersClient(e.sub, e.cred, e.opts())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := providers.Register(ctx, "Microsoft.PowerPlatform", nil); err != nil {
		t.Fatal(err)
	}
	deps := e.deployments(e.cred)

	// The template as the docs print it.
	_, err = deps.BeginCreateOrUpdate(ctx, "rg-cmk", "EPDeployment", armresources.Deployment{Properties: &armresources.DeploymentProperties{
		Template: readSeed(t), Mode: to.Ptr(armresources.DeploymentModeIncremental),
	}}, nil)
	re := wantResponseError(t, err, http.StatusBadRequest, "InvalidTemplate")
	if !strings.Contains(re.Error(), "line 9, column 22") || !strings.Contains(re.Error(), "replace the placeholders such as {EnterprisePolicyName}") {
		t.Errorf("error does not say where and what to do: %v", re)
	}

	// A vault with soft delete and purge protection, and its key.
	rg := "/subscriptions/" + e.sub + "/resourceGroups/rg-cmk"
	vaultID := rg + "/providers/Microsoft.KeyVault/vaults/kv-contoso-cmk"
	generic, err := armresources.NewClient(e.sub, e.cred, e.opts())
	if err != nil {
		t.Fatal(err)
	}
	vp, err := generic.BeginCreateOrUpdateByID(ctx, vaultID, "2023-07-01", armresources.GenericResource{Location: to.Ptr("westus"), Properties: map[string]any{
		"tenantId": e.Boot.TenantID, "sku": map[string]any{"family": "A", "name": "standard"}, "accessPolicies": []any{},
		"enableSoftDelete": true, "enablePurgeProtection": true,
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vp.PollUntilDone(ctx, poll); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if err := e.Server.Store().CreateKeyVersion(ctx, &keyhold.KeyVersion{VaultName: "kv-contoso-cmk", Name: "cmk", Version: "0123456789abcdef0123456789abcdef",
		Kty: "RSA", KeySize: 2048, KeyOps: []string{"wrapKey", "unwrapKey"}, PublicJWK: json.RawMessage(`{}`), Enabled: true, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}

	// Filled in, the seed's template deploys.
	filled := strings.NewReplacer(
		"{EnterprisePolicyName}", `"ep-contoso"`,
		"{location where EnterprisePolicy needs to be created}", `"unitedstates"`,
		"{keyVaultId}", `"`+vaultID+`"`,
		"{keyName}", `"cmk"`,
		"{keyVersion}", "null",
	).Replace(readSeed(t))
	var template map[string]any
	if err := json.Unmarshal([]byte(filled), &template); err != nil {
		t.Fatal(err)
	}
	p, err := deps.BeginCreateOrUpdate(ctx, "rg-cmk", "EPDeployment", armresources.Deployment{Properties: &armresources.DeploymentProperties{
		Template: template, Mode: to.Ptr(armresources.DeploymentModeIncremental),
	}}, nil)
	if err != nil {
		t.Fatalf("BeginCreateOrUpdate: %v", err)
	}
	done, err := p.PollUntilDone(ctx, poll)
	if err != nil {
		t.Fatalf("PollUntilDone: %v", err)
	}
	policyID := rg + "/providers/Microsoft.PowerPlatform/enterprisePolicies/ep-contoso"
	if st := *done.Properties.ProvisioningState; st != armresources.ProvisioningStateSucceeded {
		t.Fatalf("provisioningState = %s", st)
	}
	if len(done.Properties.OutputResources) != 1 || !strings.EqualFold(*done.Properties.OutputResources[0].ID, policyID) {
		t.Errorf("outputResources = %v", done.Properties.OutputResources)
	}
	got, err := generic.GetByID(ctx, policyID, "2020-10-30", nil)
	if err != nil {
		t.Fatalf("GetByID: %v", err)
	}
	if got.Identity == nil || got.Identity.PrincipalID == nil || *got.Identity.PrincipalID == "" {
		t.Fatalf("the policy has no identity: %+v", got.Identity)
	}
	principal := *got.Identity.PrincipalID

	// The admin grants: a second deployment, with parameters, variables,
	// reference() of a resource outside the template, resourceId() in
	// dependsOn, the access policy and the role assignment.
	admin, _ := e.user("ppadmin", "", "", keyhold.RolePowerPlatformAdministrator)
	reader, _ := rbac.RoleByName(rbac.RoleReader)
	grants := `{
	  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
	  "contentVersion": "1.0.0.0",
	  "parameters": {
	    "vaultName": {"type": "string"}, "policyName": {"type": "string"}, "adminId": {"type": "string"},
	    "role": {"type": "string", "allowedValues": ["` + reader.ID + `"]}
	  },
	  "variables": {
	    "policyId": "[resourceId('Microsoft.PowerPlatform/enterprisePolicies', parameters('policyName'))]",
	    "identity": "[reference(variables('policyId'), '2020-10-30', 'Full').identity.principalId]"
	  },
	  "resources": [
	    {"type": "Microsoft.Authorization/roleAssignments", "apiVersion": "2022-04-01",
	     "name": "[guid(variables('policyId'), parameters('adminId'), parameters('role'))]",
	     "scope": "[variables('policyId')]",
	     "dependsOn": ["[resourceId('Microsoft.KeyVault/vaults/accessPolicies', parameters('vaultName'), 'add')]"],
	     "properties": {"roleDefinitionId": "[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', parameters('role'))]",
	                    "principalId": "[parameters('adminId')]", "principalType": "User"}},
	    {"type": "Microsoft.KeyVault/vaults/accessPolicies", "apiVersion": "2023-07-01",
	     "name": "[concat(parameters('vaultName'), '/add')]",
	     "properties": {"accessPolicies": [{"tenantId": "[subscription().tenantId]", "objectId": "[variables('identity')]",
	                    "permissions": {"keys": ["get", "wrapKey", "unwrapKey"]}}]}}
	  ],
	  "outputs": {"principalId": {"type": "string", "value": "[variables('identity')]"}}
	}`
	var grantsTemplate map[string]any
	if err := json.Unmarshal([]byte(grants), &grantsTemplate); err != nil {
		t.Fatal(err)
	}
	params := map[string]any{
		"vaultName": map[string]any{"value": "kv-contoso-cmk"}, "policyName": map[string]any{"value": "ep-contoso"},
		"adminId": map[string]any{"value": admin.ID}, "role": map[string]any{"value": reader.ID},
	}
	props := &armresources.DeploymentProperties{Template: grantsTemplate, Parameters: params, Mode: to.Ptr(armresources.DeploymentModeIncremental)}
	vpoll, err := deps.BeginValidate(ctx, "rg-cmk", "grants", armresources.Deployment{Properties: props}, nil)
	if err != nil {
		t.Fatalf("BeginValidate: %v", err)
	}
	if _, err := vpoll.PollUntilDone(ctx, poll); err != nil {
		t.Fatalf("validate: %v", err)
	}
	gp, err := deps.BeginCreateOrUpdate(ctx, "rg-cmk", "grants", armresources.Deployment{Properties: props}, nil)
	if err != nil {
		t.Fatalf("BeginCreateOrUpdate grants: %v", err)
	}
	gdone, err := gp.PollUntilDone(ctx, poll)
	if err != nil {
		t.Fatalf("grants: %v", err)
	}
	out, _ := gdone.Properties.Outputs.(map[string]any)
	if v, _ := out["principalId"].(map[string]any); v["value"] != principal {
		t.Errorf("outputs = %v, want principalId %s", out, principal)
	}
	vault, err := generic.GetByID(ctx, vaultID, "2023-07-01", nil)
	if err != nil {
		t.Fatal(err)
	}
	aps := vault.Properties.(map[string]any)["accessPolicies"].([]any)
	if len(aps) != 1 || aps[0].(map[string]any)["objectId"] != principal {
		t.Errorf("vault access policies = %v", aps)
	}
	as, err := e.Server.Store().ListRoleAssignments(ctx, keyhold.RoleAssignmentFilter{PrincipalID: admin.ID})
	if err != nil || len(as) != 1 || !strings.EqualFold(as[0].Scope, policyID) || as[0].RoleDefinitionID != reader.ID {
		t.Errorf("admin's role assignments = %v, %v", as, err)
	}

	// Each applied resource is in the audit log, as the deploying caller.
	recs, err := e.Server.Store().ListAudit(ctx, keyhold.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	audited := map[string]bool{}
	for _, r := range recs {
		if strings.Contains(r.Detail, "/deployments/grants") && r.PrincipalID == e.Server.Bootstrap().ServicePrincipalID && r.Result == "Succeeded" {
			audited[r.Action] = true
		}
	}
	for _, a := range []string{"Microsoft.KeyVault/vaults/accessPolicies/write", "Microsoft.Authorization/roleAssignments/write"} {
		if !audited[a] {
			t.Errorf("no audit record of %s by the deployment (have %v)", a, audited)
		}
	}

	// Operations through DeploymentOperationsClient, in dependency order.
	opsClient, err := armresources.NewDeploymentOperationsClient(e.sub, e.cred, e.opts())
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	pager := opsClient.NewListPager("rg-cmk", "grants", nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, op := range page.Value {
			types = append(types, *op.Properties.TargetResource.ResourceType+"="+*op.Properties.ProvisioningState)
		}
	}
	if want := "Microsoft.KeyVault/vaults/accessPolicies=Succeeded,Microsoft.Authorization/roleAssignments=Succeeded"; strings.Join(types, ",") != want {
		t.Errorf("operations = %v, want %s", types, want)
	}

	// Deploying the same again is idempotent.
	gp, err = deps.BeginCreateOrUpdate(ctx, "rg-cmk", "grants", armresources.Deployment{Properties: props}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gp.PollUntilDone(ctx, poll); err != nil {
		t.Fatalf("second run of grants: %v", err)
	}

	// Both deployments are listed.
	var names []string
	lp := deps.NewListByResourceGroupPager("rg-cmk", nil)
	for lp.More() {
		page, err := lp.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range page.Value {
			names = append(names, *d.Name)
		}
	}
	if len(names) != 2 {
		t.Errorf("deployments = %v", names)
	}
}

// TestFailedDeploymentAndReaderThroughArmresources: a resource the
// resource manager refuses fails the deployment with ARM's details, and a
// Reader cannot deploy at all.
func TestFailedDeploymentAndReaderThroughArmresources(t *testing.T) {
	e := startServer(t)
	ctx := context.Background()
	groups, err := armresources.NewResourceGroupsClient(e.sub, e.cred, e.opts())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := groups.CreateOrUpdate(ctx, "rg1", armresources.ResourceGroup{Location: to.Ptr("westus")}, nil); err != nil {
		t.Fatal(err)
	}
	template := map[string]any{
		"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
		"resources": []any{map[string]any{
			"type": "Microsoft.KeyVault/vaults", "apiVersion": "2023-07-01", "name": "kv-bad", "location": "westus",
			"properties": map[string]any{"tenantId": e.Boot.TenantID, "sku": map[string]any{"family": "A", "name": "nosuchsku"}},
		}},
	}
	deps := e.deployments(e.cred)
	p, err := deps.BeginCreateOrUpdate(ctx, "rg1", "bad", armresources.Deployment{Properties: &armresources.DeploymentProperties{
		Template: template, Mode: to.Ptr(armresources.DeploymentModeIncremental),
	}}, nil)
	if err != nil {
		t.Fatalf("BeginCreateOrUpdate: %v", err)
	}
	_, err = p.PollUntilDone(ctx, poll)
	re := wantResponseError(t, err, http.StatusOK, "DeploymentFailed")
	if !strings.Contains(re.Error(), "sku") {
		t.Errorf("the failure does not carry the vault's reason: %v", re)
	}
	got, err := deps.Get(ctx, "rg1", "bad", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *got.Properties.ProvisioningState != armresources.ProvisioningStateFailed || got.Properties.Error == nil ||
		len(got.Properties.Error.Details) != 1 || *got.Properties.Error.Details[0].Target == "" {
		t.Errorf("deployment = %+v", got.Properties)
	}

	// A Reader of the group may read the deployment but not deploy.
	_, readerCred := e.user("reader", rbac.RoleReader, "/subscriptions/"+e.sub+"/resourceGroups/rg1")
	rdeps := e.deployments(readerCred)
	_, err = rdeps.BeginCreateOrUpdate(ctx, "rg1", "mine", armresources.Deployment{Properties: &armresources.DeploymentProperties{
		Template: template, Mode: to.Ptr(armresources.DeploymentModeIncremental),
	}}, nil)
	re = wantResponseError(t, err, http.StatusForbidden, "AuthorizationFailed")
	if !strings.Contains(re.Error(), "Microsoft.Resources/deployments/write") {
		t.Errorf("403 does not name the action: %v", re)
	}
	if _, err := rdeps.Get(ctx, "rg1", "bad", nil); err != nil {
		t.Errorf("a Reader's GET: %v", err)
	}
	if resp, err := rdeps.CheckExistence(ctx, "rg1", "bad", nil); err != nil || !resp.Success {
		t.Errorf("CheckExistence = %v, %v", resp, err)
	}
}
