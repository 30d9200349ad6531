package arm

import (
	"context"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	azarm "github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"

	"github.com/keyhold/keyhold/internal/unitenv"
)

const managementAudience = "https://management.keyhold.internal"

// tokenCredential hands out a fixed bearer token: the test middleware maps
// it to a principal. It checks that the SDK asks for the management scope.
func tokenCredential(t *testing.T, token string) unitenv.Credential {
	return unitenv.Credential{TB: t, Token: token, Audience: managementAudience}
}

// sdkServer serves the handler over TLS behind a middleware that maps
// "Bearer <principal id>" to that principal.
func sdkServer(t *testing.T, e *env) (*httptest.Server, func(principal string) *azarm.ClientOptions) {
	t.Helper()
	srv := httptest.NewTLSServer(e.middleware(e.srv.Handler(), unitenv.Bearer))
	t.Cleanup(srv.Close)
	return srv, func(string) *azarm.ClientOptions { return unitenv.ARMOptions(srv, managementAudience) }
}

func statusOf(t *testing.T, err error) (int, string) {
	t.Helper()
	re := unitenv.ResponseError(t, err)
	return re.StatusCode, re.ErrorCode
}

func TestSDKResourceGroupsAndProviders(t *testing.T) {
	e := newEnvDelay(t, 0)
	_, opts := sdkServer(t, e)
	ctx := context.Background()
	cred := tokenCredential(t, ownerID)

	groups, err := armresources.NewResourceGroupsClient(subA, cred, opts(ownerID))
	if err != nil {
		t.Fatal(err)
	}
	created, err := groups.CreateOrUpdate(ctx, "kv-rg", armresources.ResourceGroup{Location: to.Ptr("West Europe"), Tags: map[string]*string{"env": to.Ptr("test")}}, nil)
	if err != nil {
		t.Fatalf("CreateOrUpdate: %v", err)
	}
	if *created.ID != subPath+"/resourceGroups/kv-rg" || *created.Location != "westeurope" || *created.Properties.ProvisioningState != "Succeeded" {
		t.Errorf("created %+v", created.ResourceGroup)
	}
	got, err := groups.Get(ctx, "KV-RG", nil)
	if err != nil || *got.Name != "kv-rg" || *got.Tags["env"] != "test" {
		t.Fatalf("Get: %+v, %v", got, err)
	}
	if ex, err := groups.CheckExistence(ctx, "kv-rg", nil); err != nil || !ex.Success {
		t.Errorf("CheckExistence(existing) = %v, %v", ex.Success, err)
	}
	if ex, err := groups.CheckExistence(ctx, "nope", nil); err != nil || ex.Success {
		t.Errorf("CheckExistence(missing) = %v, %v", ex.Success, err)
	}
	if _, err := groups.Get(ctx, "nope", nil); err == nil {
		t.Error("Get of a missing group succeeded")
	} else if status, code := statusOf(t, err); status != 404 || code != "ResourceGroupNotFound" {
		t.Errorf("Get missing: %d %s", status, code)
	}
	if _, err := groups.Update(ctx, "kv-rg", armresources.ResourceGroupPatchable{Tags: map[string]*string{"env": to.Ptr("prod")}}, nil); err != nil {
		t.Errorf("Update: %v", err)
	}
	for _, n := range []string{"a-rg", "b-rg"} {
		if _, err := groups.CreateOrUpdate(ctx, n, armresources.ResourceGroup{Location: to.Ptr("eastus")}, nil); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	pager := groups.NewListPager(&armresources.ResourceGroupsClientListOptions{Top: to.Ptr[int32](2)})
	pages := 0
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("NextPage: %v", err)
		}
		pages++
		for _, g := range page.Value {
			names = append(names, *g.Name)
		}
	}
	if strings.Join(names, ",") != "a-rg,b-rg,kv-rg" || pages != 2 {
		t.Errorf("listed %v in %d pages", names, pages)
	}

	// Providers: register one that starts unregistered.
	providers, err := armresources.NewProvidersClient(subA, cred, opts(ownerID))
	if err != nil {
		t.Fatal(err)
	}
	p, err := providers.Get(ctx, "Microsoft.PowerPlatform", nil)
	if err != nil || *p.RegistrationState != "NotRegistered" {
		t.Fatalf("Get provider: %+v, %v", p, err)
	}
	p2, err := providers.Register(ctx, "Microsoft.PowerPlatform", nil)
	if err != nil || *p2.RegistrationState != "Registered" {
		t.Fatalf("Register: %v, %v", p2.RegistrationState, err)
	}
	kv, err := providers.Get(ctx, "Microsoft.KeyVault", nil)
	if err != nil || *kv.RegistrationState != "Registered" || *kv.Namespace != "Microsoft.KeyVault" {
		t.Errorf("Get Microsoft.KeyVault: %+v, %v", kv, err)
	}

	// A resource of an unregistered namespace: the SDK's registration
	// policy registers Keyhold.Test on the 409 and retries the PUT.
	resources, err := armresources.NewClient(subA, cred, opts(ownerID))
	if err != nil {
		t.Fatal(err)
	}
	wid := subPath + "/resourceGroups/kv-rg/providers/Keyhold.Test/widgets/w1"
	poller, err := resources.BeginCreateOrUpdateByID(ctx, wid, "2024-01-01", armresources.GenericResource{
		Location: to.Ptr("westeurope"), Properties: map[string]any{"size": 4},
	}, nil)
	if err != nil {
		t.Fatalf("BeginCreateOrUpdateByID: %v", err)
	}
	res, err := poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: time.Millisecond})
	if err != nil || *res.ID != wid || res.Properties.(map[string]any)["size"] != float64(4) {
		t.Fatalf("PUT widget: %+v, %v", res, err)
	}
	if st, _ := e.srv.providerState(ctx, subA, "Keyhold.Test"); st != "Registered" {
		t.Errorf("Keyhold.Test is %s after the SDK's auto-registration", st)
	}
	var listed []string
	rp := resources.NewListByResourceGroupPager("kv-rg", &armresources.ClientListByResourceGroupOptions{Filter: to.Ptr("resourceType eq 'Keyhold.Test/widgets'")})
	for rp.More() {
		page, err := rp.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Value {
			listed = append(listed, *r.ID)
		}
	}
	if len(listed) != 1 || listed[0] != wid {
		t.Errorf("ListByResourceGroup = %v", listed)
	}

	// Deleting the group: 202 + Location, and the poller finishes.
	dp, err := groups.BeginDelete(ctx, "kv-rg", nil)
	if err != nil {
		t.Fatalf("BeginDelete: %v", err)
	}
	if _, err := dp.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: time.Millisecond}); err != nil {
		t.Fatalf("PollUntilDone: %v", err)
	}
	if ex, err := groups.CheckExistence(ctx, "kv-rg", nil); err != nil || ex.Success {
		t.Errorf("the group exists after deletion: %v, %v", ex.Success, err)
	}
	if _, err := resources.GetByID(ctx, wid, "2024-01-01", nil); err == nil {
		t.Error("the widget survived its group")
	}
}

func TestSDKRoleAssignments(t *testing.T) {
	e := newEnvDelay(t, 0)
	_, opts := sdkServer(t, e)
	ctx := context.Background()
	owner, reader := tokenCredential(t, ownerID), tokenCredential(t, readerID)

	ownerGroups, _ := armresources.NewResourceGroupsClient(subA, owner, opts(ownerID))
	if _, err := ownerGroups.CreateOrUpdate(ctx, "rg1", armresources.ResourceGroup{Location: to.Ptr("westeurope")}, nil); err != nil {
		t.Fatal(err)
	}
	defs, err := armauthorization.NewRoleDefinitionsClient(owner, opts(ownerID))
	if err != nil {
		t.Fatal(err)
	}
	var readerDef *armauthorization.RoleDefinition
	dp := defs.NewListPager(groupPath, &armauthorization.RoleDefinitionsClientListOptions{Filter: to.Ptr("roleName eq 'Reader'")})
	for dp.More() {
		page, err := dp.NextPage(ctx)
		if err != nil {
			t.Fatalf("role definitions: %v", err)
		}
		for _, d := range page.Value {
			readerDef = d
		}
	}
	if readerDef == nil || *readerDef.Name != readerRole || *readerDef.Properties.RoleName != "Reader" || *readerDef.Properties.RoleType != "BuiltInRole" {
		t.Fatalf("Reader definition = %+v", readerDef)
	}

	assignments, err := armauthorization.NewRoleAssignmentsClient(subA, owner, opts(ownerID))
	if err != nil {
		t.Fatal(err)
	}
	const name = "7a000000-0000-0000-0000-000000000001"
	created, err := assignments.Create(ctx, groupPath, name, armauthorization.RoleAssignmentCreateParameters{
		Properties: &armauthorization.RoleAssignmentProperties{
			RoleDefinitionID: readerDef.ID,
			PrincipalID:      to.Ptr(readerID),
			PrincipalType:    to.Ptr(armauthorization.PrincipalTypeUser),
		},
	}, nil)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if *created.Properties.Scope != groupPath || *created.Properties.PrincipalID != readerID || *created.Properties.RoleDefinitionID != *readerDef.ID {
		t.Errorf("created %+v", created.Properties)
	}
	if _, err := assignments.Create(ctx, groupPath, "7a000000-0000-0000-0000-000000000002", armauthorization.RoleAssignmentCreateParameters{
		Properties: &armauthorization.RoleAssignmentProperties{RoleDefinitionID: readerDef.ID, PrincipalID: to.Ptr(readerID)},
	}, nil); err == nil {
		t.Error("a duplicate assignment was created")
	} else if status, code := statusOf(t, err); status != 409 || code != "RoleAssignmentExists" {
		t.Errorf("duplicate: %d %s", status, code)
	}
	byID, err := assignments.GetByID(ctx, *created.ID, nil)
	if err != nil || *byID.Name != name {
		t.Errorf("GetByID: %+v, %v", byID, err)
	}

	// The reader can read the group but not change it.
	readerGroups, _ := armresources.NewResourceGroupsClient(subA, reader, opts(readerID))
	if _, err := readerGroups.Get(ctx, "rg1", nil); err != nil {
		t.Errorf("reader Get: %v", err)
	}
	_, err = readerGroups.CreateOrUpdate(ctx, "rg1", armresources.ResourceGroup{Location: to.Ptr("westeurope"), Tags: map[string]*string{"x": to.Ptr("y")}}, nil)
	if err == nil {
		t.Fatal("the reader changed the group")
	}
	if status, code := statusOf(t, err); status != 403 || code != "AuthorizationFailed" {
		t.Errorf("reader write: %d %s", status, code)
	}
	readerAssignments, _ := armauthorization.NewRoleAssignmentsClient(subA, reader, opts(readerID))
	if _, err := readerAssignments.Create(ctx, groupPath, "7a000000-0000-0000-0000-000000000003", armauthorization.RoleAssignmentCreateParameters{
		Properties: &armauthorization.RoleAssignmentProperties{RoleDefinitionID: readerDef.ID, PrincipalID: to.Ptr(appID)},
	}, nil); err == nil {
		t.Error("the reader assigned a role")
	} else if status, code := statusOf(t, err); status != 403 || code != "AuthorizationFailed" {
		t.Errorf("reader assign: %d %s", status, code)
	}

	names := func(p *runtime.Pager[armauthorization.RoleAssignmentsClientListForScopeResponse]) []string {
		t.Helper()
		var out []string
		for p.More() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatalf("list: %v", err)
			}
			for _, a := range page.Value {
				out = append(out, *a.Name)
			}
		}
		return out
	}
	if got := names(assignments.NewListForScopePager(groupPath, &armauthorization.RoleAssignmentsClientListForScopeOptions{Filter: to.Ptr("atScope()")})); strings.Join(got, ",") != "0a000000-0000-0000-0000-000000000001,"+name {
		t.Errorf("atScope() at the group = %v", got)
	}
	// The SDK puts $filter into the URL unencoded, and Go's HTTP server (like
	// Azure's front door) refuses a request line with spaces, so callers
	// encode the filter themselves (Azure/azure-sdk-for-go#20847).
	if got := names(assignments.NewListForScopePager(subPath, &armauthorization.RoleAssignmentsClientListForScopeOptions{Filter: to.Ptr(url.QueryEscape("principalId eq '" + readerID + "'"))})); strings.Join(got, ",") != name {
		t.Errorf("principalId filter = %v", got)
	}
	var forSub []string
	sp := assignments.NewListForSubscriptionPager(&armauthorization.RoleAssignmentsClientListForSubscriptionOptions{Filter: to.Ptr(url.QueryEscape("principalId eq '" + readerID + "'"))})
	for sp.More() {
		page, err := sp.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range page.Value {
			forSub = append(forSub, *a.Name)
		}
	}
	if strings.Join(forSub, ",") != name {
		t.Errorf("ListForSubscription = %v", forSub)
	}
	var forGroup []string
	gp := assignments.NewListForResourceGroupPager("rg1", nil)
	for gp.More() {
		page, err := gp.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range page.Value {
			forGroup = append(forGroup, *a.Name)
		}
	}
	if len(forGroup) != 2 {
		t.Errorf("ListForResourceGroup = %v", forGroup)
	}

	if _, err := assignments.Delete(ctx, groupPath, name, nil); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := readerGroups.Get(ctx, "rg1", nil); err == nil {
		t.Error("the reader still reads after the assignment was deleted")
	}
}
