package policy_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
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
)

// TestSDKGenericClient drives a real server over TLS with the real
// armresources clients, as Get-AzResource and the seed's template deployment
// do: the policy is created and read back by id, and its identity is a
// principal of the directory.
func TestSDKGenericClient(t *testing.T) {
	ctx := context.Background()
	e := testenv.Start(t)
	srv, boot := e.Server, e.Boot
	cred, opts := e.ServicePrincipal(), e.ARMOptions()
	sub := boot.SubscriptionID

	groups, err := armresources.NewResourceGroupsClient(sub, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := groups.CreateOrUpdate(ctx, "rg-cmk", armresources.ResourceGroup{Location: to.Ptr("westus")}, nil); err != nil {
		t.Fatalf("create group: %v", err)
	}
	generic, err := armresources.NewClient(sub, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	policyID := "/subscriptions/" + sub + "/resourceGroups/rg-cmk/providers/Microsoft.PowerPlatform/enterprisePolicies/ep-contoso"
	vaultID := "/subscriptions/" + sub + "/resourceGroups/rg-cmk/providers/Microsoft.KeyVault/vaults/kv-contoso-cmk"
	seedPolicy := armresources.GenericResource{
		Location: to.Ptr("unitedstates"),
		Kind:     to.Ptr("Encryption"),
		Identity: &armresources.Identity{Type: to.Ptr(armresources.ResourceIdentityTypeSystemAssigned)},
		Properties: map[string]any{
			"encryption": map[string]any{
				"state":    "Enabled",
				"keyVault": map[string]any{"id": vaultID, "key": map[string]any{"name": "cmk"}},
			},
			"networkInjection": nil,
		},
	}

	// Before the provider is registered the policy is refused (the SDK
	// would register it by itself, unless told not to).
	noAutoRegister, err := armresources.NewClient(sub, cred, &azarm.ClientOptions{ClientOptions: e.ClientOptions(), DisableRPRegistration: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = noAutoRegister.BeginCreateOrUpdateByID(ctx, policyID, "2020-10-30", seedPolicy, nil)
	wantResponseError(t, err, http.StatusConflict, "MissingSubscriptionRegistration")
	providers, err := armresources.NewProvidersClient(sub, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := providers.Register(ctx, "Microsoft.PowerPlatform", nil); err != nil {
		t.Fatalf("register provider: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, err := providers.Get(ctx, "Microsoft.PowerPlatform", nil)
		if err == nil && *p.RegistrationState == "Registered" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("provider not registered: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The vault, through the same client; the key as the vault stores it.
	vault, err := generic.BeginCreateOrUpdateByID(ctx, vaultID, "2023-07-01", armresources.GenericResource{
		Location: to.Ptr("westus"),
		Properties: map[string]any{
			"tenantId": boot.TenantID, "sku": map[string]any{"family": "A", "name": "standard"}, "accessPolicies": []any{},
			"enableSoftDelete": true, "enablePurgeProtection": true,
		},
	}, nil)
	if err != nil {
		t.Fatalf("create vault: %v", err)
	}
	if _, err := vault.PollUntilDone(ctx, &azruntimePoll); err != nil {
		t.Fatalf("create vault: %v", err)
	}

	// A missing key is refused with the key's name.
	_, err = generic.BeginCreateOrUpdateByID(ctx, policyID, "2020-10-30", seedPolicy, nil)
	wantResponseError(t, err, http.StatusBadRequest, "KeyNotFound")
	now := time.Now().UTC()
	if err := srv.Store().CreateKeyVersion(ctx, &keyhold.KeyVersion{VaultName: "kv-contoso-cmk", Name: "cmk", Version: "0123456789abcdef0123456789abcdef",
		Kty: "RSA", KeySize: 2048, KeyOps: []string{"wrapKey", "unwrapKey"}, PublicJWK: json.RawMessage(`{}`), Enabled: true, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}

	poller, err := generic.BeginCreateOrUpdateByID(ctx, policyID, "2020-10-30", seedPolicy, nil)
	if err != nil {
		t.Fatalf("create policy: %v", err)
	}
	created, err := poller.PollUntilDone(ctx, &azruntimePoll)
	if err != nil {
		t.Fatalf("create policy: %v", err)
	}
	if created.Identity == nil || created.Identity.PrincipalID == nil || *created.Identity.PrincipalID == "" {
		t.Fatalf("created policy has no identity principal: %+v", created.Identity)
	}

	got, err := generic.GetByID(ctx, policyID, "2020-10-30", nil)
	if err != nil {
		t.Fatalf("GetByID: %v", err)
	}
	if !strings.EqualFold(*got.ID, policyID) || *got.Kind != "Encryption" || *got.Location != "unitedstates" || *got.Type != "Microsoft.PowerPlatform/enterprisePolicies" {
		t.Errorf("GetByID = id %s kind %s location %s type %s", *got.ID, *got.Kind, *got.Location, *got.Type)
	}
	principal := *got.Identity.PrincipalID
	if principal != *created.Identity.PrincipalID || *got.Identity.TenantID != boot.TenantID || *got.Identity.Type != armresources.ResourceIdentityTypeSystemAssigned {
		t.Errorf("identity = %s %s %s", principal, *got.Identity.TenantID, *got.Identity.Type)
	}
	props, _ := got.Properties.(map[string]any)
	// No access is granted yet: the health checker may not have looked, or
	// has found the identity locked out.
	if h := props["healthStatus"]; h != "Undetermined" && h != "Unhealthy" || !strings.HasPrefix(props["systemId"].(string), "/regions/unitedstates/providers/Microsoft.PowerPlatform/enterprisePolicies/") {
		t.Errorf("properties = %v", props)
	}
	// armresources.Identity has no systemAssignedIdentityPrincipalId; read
	// the raw body for it.
	var rawPolicy struct {
		Identity map[string]string `json:"identity"`
	}
	rawGet(e, cred, policyID+"?api-version=2020-10-30-preview", boot.ResourceManagerEndpoint, boot.ResourceManagerAudience, &rawPolicy)
	if rawPolicy.Identity["principalId"] != principal || rawPolicy.Identity["systemAssignedIdentityPrincipalId"] != principal {
		t.Errorf("raw identity = %v, want principalId = systemAssignedIdentityPrincipalId = %s", rawPolicy.Identity, principal)
	}

	// The principal is in the directory, as a managed identity.
	admin := e.Admin()
	var sp struct {
		ID                   string `json:"id"`
		DisplayName          string `json:"displayName"`
		ServicePrincipalType string `json:"servicePrincipalType"`
	}
	rawGet(e, admin, "/v1.0/servicePrincipals/"+principal, boot.GraphEndpoint, boot.GraphAudience, &sp)
	if sp.ID != principal || sp.DisplayName != "ep-contoso" || sp.ServicePrincipalType != "ManagedIdentity" {
		t.Errorf("directory entry = %+v", sp)
	}

	// A location outside the Power Platform regions is refused with the list.
	bad := seedPolicy
	bad.Location = to.Ptr("westus")
	_, err = generic.BeginCreateOrUpdateByID(ctx, policyID+"2", "2020-10-30", bad, nil)
	if code := wantResponseError(t, err, http.StatusBadRequest, "LocationNotAvailableForResourceType"); !strings.Contains(code, "unitedstates") {
		t.Errorf("location error does not list the regions: %s", code)
	}

	// Deleting the policy deletes its identity.
	del, err := generic.BeginDeleteByID(ctx, policyID, "2020-10-30", nil)
	if err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := del.PollUntilDone(ctx, &azruntimePoll); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := srv.Store().GetPrincipal(ctx, principal); !keyhold.IsNotFound(err) {
		t.Errorf("the policy's principal after delete: %v", err)
	}
}

// azruntimePoll polls quickly: the server answers synchronously anyway.
var azruntimePoll = runtime.PollUntilDoneOptions{Frequency: 10 * time.Millisecond}

// wantResponseError checks that err is an Azure response error with the
// status and code, and returns its message body.
func wantResponseError(t *testing.T, err error, status int, code string) string {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("error %v is not a ResponseError, want %d %s", err, status, code)
	}
	if re.StatusCode != status || re.ErrorCode != code {
		t.Fatalf("error = %d %s, want %d %s: %v", re.StatusCode, re.ErrorCode, status, code, err)
	}
	return re.Error()
}

// rawGet GETs path from endpoint with a token for audience and decodes the
// JSON answer into out.
func rawGet(e *testenv.Env, cred azcore.TokenCredential, path, endpoint, audience string, out any) {
	e.TB.Helper()
	tok := e.Token(cred, strings.TrimSuffix(audience, "/"))
	resp, b := e.Do("GET", strings.TrimSuffix(endpoint, "/")+path, tok, nil, nil)
	if resp.StatusCode != http.StatusOK {
		e.TB.Fatalf("GET %s = %d %s", path, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		e.TB.Fatalf("GET %s: %v", path, err)
	}
}
