package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/google/uuid"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/identity"
)

// cmk is a customer's key set up as the seed's key vault administrator does
// it: a vault with purge protection, an RSA key, an Encryption policy whose
// identity holds get, wrapKey and unwrapKey on the vault.
type cmk struct {
	vault, policyID, systemID, principal string
	access                               armkeyvault.VaultAccessPolicyParameters
}

func (e *env) setupCMK(t *testing.T, group, vault, policyName string) *cmk {
	t.Helper()
	ctx := context.Background()
	sub, tenant := e.Boot.SubscriptionID, e.Boot.TenantID
	owner, opts := e.ServicePrincipal(), e.ARMOptions()
	vaults, _ := armkeyvault.NewVaultsClient(sub, owner, opts)
	p, err := vaults.BeginCreateOrUpdate(ctx, group, vault, armkeyvault.VaultCreateOrUpdateParameters{
		Location: to.Ptr("westus"),
		Properties: &armkeyvault.VaultProperties{
			TenantID: to.Ptr(tenant), SKU: &armkeyvault.SKU{Family: to.Ptr(armkeyvault.SKUFamilyA), Name: to.Ptr(armkeyvault.SKUNameStandard)},
			EnablePurgeProtection: to.Ptr(true),
			AccessPolicies: []*armkeyvault.AccessPolicyEntry{{TenantID: to.Ptr(tenant), ObjectID: to.Ptr(e.Server.Bootstrap().ServicePrincipalID),
				Permissions: &armkeyvault.Permissions{Keys: []*armkeyvault.KeyPermissions{to.Ptr(armkeyvault.KeyPermissionsAll)}}}},
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := p.PollUntilDone(ctx, fastPoll)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.vaultClient(vault, owner).CreateKey(ctx, "cmk", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr(int32(2048))}, nil); err != nil {
		t.Fatal(err)
	}
	generic, _ := armresources.NewClient(sub, owner, opts)
	id := "/subscriptions/" + sub + "/resourceGroups/" + group + "/providers/Microsoft.PowerPlatform/enterprisePolicies/" + policyName
	pp, err := generic.BeginCreateOrUpdateByID(ctx, id, "2020-10-30", armresources.GenericResource{
		Location: to.Ptr("unitedstates"), Kind: to.Ptr("Encryption"),
		Identity: &armresources.Identity{Type: to.Ptr(armresources.ResourceIdentityTypeSystemAssigned)},
		Properties: map[string]any{"encryption": map[string]any{"state": "Enabled",
			"keyVault": map[string]any{"id": *v.ID, "key": map[string]any{"name": "cmk"}}}},
	}, nil)
	if err != nil {
		t.Fatalf("create policy: %v", err)
	}
	pol, err := pp.PollUntilDone(ctx, fastPoll)
	if err != nil {
		t.Fatal(err)
	}
	c := &cmk{vault: vault, policyID: id, principal: *pol.Identity.PrincipalID,
		systemID: pol.Properties.(map[string]any)["systemId"].(string)}
	c.access = armkeyvault.VaultAccessPolicyParameters{Properties: &armkeyvault.VaultAccessPolicyProperties{
		AccessPolicies: []*armkeyvault.AccessPolicyEntry{{TenantID: to.Ptr(tenant), ObjectID: to.Ptr(c.principal),
			Permissions: &armkeyvault.Permissions{Keys: []*armkeyvault.KeyPermissions{
				to.Ptr(armkeyvault.KeyPermissionsGet), to.Ptr(armkeyvault.KeyPermissionsWrapKey), to.Ptr(armkeyvault.KeyPermissionsUnwrapKey)}}}},
	}}
	e.setAccess(t, group, c, armkeyvault.AccessPolicyUpdateKindAdd)
	e.waitPolicyHealth(t, c, "Healthy")
	return c
}

func (e *env) setAccess(t *testing.T, group string, c *cmk, kind armkeyvault.AccessPolicyUpdateKind) {
	t.Helper()
	vaults, _ := armkeyvault.NewVaultsClient(e.Boot.SubscriptionID, e.ServicePrincipal(), e.ARMOptions())
	if _, err := vaults.UpdateAccessPolicy(context.Background(), group, c.vault, kind, c.access, nil); err != nil {
		t.Fatal(err)
	}
}

func (e *env) waitPolicyHealth(t *testing.T, c *cmk, want string) {
	t.Helper()
	generic, _ := armresources.NewClient(e.Boot.SubscriptionID, e.ServicePrincipal(), e.ARMOptions())
	waitFor(t, "policy "+want, func() bool {
		p, err := generic.GetByID(context.Background(), c.policyID, "2020-10-30", nil)
		return err == nil && p.Properties.(map[string]any)["healthStatus"] == want
	})
}

const bapEnvs = "/providers/Microsoft.BusinessAppPlatform/environments"

// lifecycle posts a link or unlink and follows operation-location until the
// operation ends, as Microsoft's scripts do.
func (e *env) lifecycle(t *testing.T, token, envID, verb, systemID string) {
	t.Helper()
	resp, b := e.Do("POST", bapEnvs+"/"+envID+"/enterprisePolicies/Encryption/"+verb+"?&api-version=2019-10-01", token,
		map[string]string{"SystemId": systemID}, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("%s: %d %s", verb, resp.StatusCode, b)
	}
	loc := resp.Header.Get("operation-location")
	if loc == "" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("%s: no operation-location or Retry-After", verb)
	}
	var op struct {
		State struct{ ID string }      `json:"state"`
		Error struct{ Message string } `json:"error"`
	}
	waitFor(t, verb+" operation", func() bool {
		e.Do("GET", loc, token, nil, &op)
		return op.State.ID == "Succeeded" || op.State.ID == "Failed"
	})
	if op.State.ID != "Succeeded" {
		t.Fatalf("%s operation %s: %s", verb, op.State.ID, op.Error.Message)
	}
}

// TestEnvironmentCMKWalk walks the seed's platform administrator: an
// environment with rows under the platform key is added to a policy (its data
// re-encrypted online), locked when key access is revoked, re-enabled when it
// is restored, moved to a second policy's key, and reverted to the platform
// key; every row reads back equal after each step.
func TestEnvironmentCMKWalk(t *testing.T) {
	rows := 10000
	if testing.Short() {
		rows = 500
	}
	e := start(t, "")
	ctx := context.Background()
	sub := e.Boot.SubscriptionID
	owner, opts := e.ServicePrincipal(), e.ARMOptions()
	groups, _ := armresources.NewResourceGroupsClient(sub, owner, opts)
	if _, err := groups.CreateOrUpdate(ctx, "rg-cmk", armresources.ResourceGroup{Location: to.Ptr("westus")}, nil); err != nil {
		t.Fatal(err)
	}
	providers, _ := armresources.NewProvidersClient(sub, owner, opts)
	if _, err := providers.Register(ctx, "Microsoft.PowerPlatform", nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "provider registered", func() bool {
		p, err := providers.Get(ctx, "Microsoft.PowerPlatform", nil)
		return err == nil && *p.RegistrationState == "Registered"
	})
	first := e.setupCMK(t, "rg-cmk", "kv-first", "ep-first")
	second := e.setupCMK(t, "rg-cmk", "kv-second", "ep-second")

	// The Power Platform administrator holds Reader on both policies.
	const ppPassword = "Pp-admin-password-42!"
	ppID, ppUPN := e.CreateUser("ppadmin", ppPassword, keyhold.RolePowerPlatformAdministrator)
	assignments, _ := armauthorization.NewRoleAssignmentsClient(sub, owner, opts)
	for _, c := range []*cmk{first, second} {
		if _, err := assignments.Create(ctx, c.policyID, uuid.NewString(), armauthorization.RoleAssignmentCreateParameters{
			Properties: &armauthorization.RoleAssignmentProperties{
				RoleDefinitionID: to.Ptr("/subscriptions/" + sub + "/providers/Microsoft.Authorization/roleDefinitions/" + readerRoleID),
				PrincipalID:      to.Ptr(ppID),
			},
		}, nil); err != nil {
			t.Fatal(err)
		}
	}
	pp := e.User(ppUPN, ppPassword)
	bap := e.Token(pp, identity.AudiencePlatform)

	// An environment with rows under the platform key.
	var created struct {
		Name string `json:"name"`
	}
	if resp, b := e.Do("POST", bapEnvs+"?api-version=2020-10-01", bap, map[string]any{"location": "unitedstates",
		"properties": map[string]any{"displayName": "Contoso Sandbox", "environmentSku": "Sandbox", "isManaged": true}}, &created); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create environment: %d %s", resp.StatusCode, b)
	}
	envID := created.Name
	data := "/environments/" + envID + "/api/data/v9.2/"
	if resp, b := e.Do("POST", data+"tables", bap, map[string]any{"name": "account",
		"columns": []map[string]any{{"name": "name", "type": "String"}, {"name": "revenue", "type": "Integer"}}}, nil); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create table: %d %s", resp.StatusCode, b)
	}
	want := map[string]string{} // row id -> name
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < rows; i += 8 {
				name := fmt.Sprintf("Contoso %05d confidential", i)
				var row map[string]any
				resp, b := e.Do("POST", data+"account", bap, map[string]any{"name": name, "revenue": i}, &row)
				if resp.StatusCode != http.StatusCreated {
					errs <- fmt.Errorf("create row %d: %d %s", i, resp.StatusCode, b)
					return
				}
				mu.Lock()
				want[row["accountid"].(string)] = name
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	checkRows := func(step string) {
		t.Helper()
		got := map[string]string{}
		next := data + "account" // $top would cap the total, as OData says
		for next != "" {
			var page struct {
				Value []map[string]any `json:"value"`
				Next  string           `json:"@odata.nextLink"`
			}
			resp, b := e.Do("GET", next, bap, nil, &page)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: list rows: %d %s", step, resp.StatusCode, b)
			}
			for _, r := range page.Value {
				got[r["accountid"].(string)] = r["name"].(string)
			}
			next = page.Next
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d rows, want %d", step, len(got), len(want))
		}
		for id, name := range want {
			if got[id] != name {
				t.Fatalf("%s: row %s = %q, want %q", step, id, got[id], name)
			}
		}
	}
	envView := func() map[string]any {
		var v struct {
			Properties map[string]any `json:"properties"`
		}
		e.Do("GET", bapEnvs+"/"+envID+"?api-version=2021-04-01", bap, nil, &v)
		return v.Properties
	}
	keyManagedBy := func() string { return envView()["protectionStatus"].(map[string]any)["keyManagedBy"].(string) }
	checkRows("under the platform key")

	// Add the environment to the first policy: linked, encrypted, every row equal.
	e.lifecycle(t, bap, envID, "link", strings.ToUpper(first.systemID))
	if got := keyManagedBy(); got != "Customer" {
		t.Fatalf("keyManagedBy after link = %s", got)
	}
	if status := envView()["encryption"].(map[string]any)["status"]; status != "Encrypted" {
		t.Fatalf("encryption status after link = %v", status)
	}
	checkRows("after link")

	// Revoke the policy identity's access: data requests are refused.
	e.setAccess(t, "rg-cmk", first, armkeyvault.AccessPolicyUpdateKindRemove)
	waitFor(t, "environment locked", func() bool {
		resp, _ := e.Do("GET", data+"account?$top=1", bap, nil, nil)
		return resp.StatusCode == http.StatusForbidden
	})
	resp, b := e.Do("GET", data+"account?$top=1", bap, nil, nil)
	if !strings.Contains(string(b), "EnvironmentLocked") {
		t.Fatalf("locked data request: %d %s", resp.StatusCode, b)
	}
	// The data path is refused first; the stored state follows.
	waitFor(t, "runtime state Disabled", func() bool {
		return envView()["states"].(map[string]any)["runtime"].(map[string]any)["id"] == "Disabled"
	})

	// Restore it and re-enable: nothing is lost.
	e.setAccess(t, "rg-cmk", first, armkeyvault.AccessPolicyUpdateKindAdd)
	e.waitPolicyHealth(t, first, "Healthy")
	if resp, b := e.Do("POST", bapEnvs+"/"+envID+"/enable?api-version=2021-04-01", bap, nil, nil); resp.StatusCode >= 300 {
		t.Fatalf("re-enable: %d %s", resp.StatusCode, b)
	}
	checkRows("after re-enable")

	// Change key: link to the second policy while linked.
	e.lifecycle(t, bap, envID, "link", second.systemID)
	if pid := envView()["enterprisePolicies"].(map[string]any)["customerManagedKeys"].(map[string]any)["id"]; !strings.EqualFold(fmt.Sprint(pid), second.policyID) {
		t.Fatalf("linked policy after swap = %v", pid)
	}
	checkRows("after swap")

	// Revert to the platform key.
	e.lifecycle(t, bap, envID, "unlink", second.systemID)
	if got := keyManagedBy(); got != "Microsoft" {
		t.Fatalf("keyManagedBy after unlink = %s", got)
	}
	checkRows("after unlink")
}
