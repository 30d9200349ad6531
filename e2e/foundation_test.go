package e2e

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	"github.com/google/uuid"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/identity"
)

const readerRoleID = "acdd72a7-3385-48ef-bd42-f606fba81ae7"

// TestFoundationWalk is the foundation's acceptance walk with the real SDK
// clients: the key vault administrator's first steps of the seed, and a Power
// Platform administrator who may read what it is granted and nothing more.
func TestFoundationWalk(t *testing.T) {
	e := start(t, "")
	ctx := context.Background()
	sub := e.Boot.SubscriptionID
	owner := e.ServicePrincipal()

	groups, err := armresources.NewResourceGroupsClient(sub, owner, e.ARMOptions())
	if err != nil {
		t.Fatal(err)
	}
	rg, err := groups.CreateOrUpdate(ctx, "rg-contoso-cmk", armresources.ResourceGroup{Location: to.Ptr("westus")}, nil)
	if err != nil {
		t.Fatalf("create group: %v", err)
	}
	if got := *rg.ID; !strings.EqualFold(got, "/subscriptions/"+sub+"/resourceGroups/rg-contoso-cmk") {
		t.Fatalf("group id = %s", got)
	}

	// Register the resource provider and wait until it is registered.
	providers, err := armresources.NewProvidersClient(sub, owner, e.ARMOptions())
	if err != nil {
		t.Fatal(err)
	}
	p, err := providers.Register(ctx, "Microsoft.PowerPlatform", nil)
	if err != nil {
		t.Fatalf("register provider: %v", err)
	}
	if state := *p.RegistrationState; state != "Registering" && state != "Registered" {
		t.Fatalf("registration state after register = %s", state)
	}
	waitFor(t, "provider registered", func() bool {
		p, err := providers.Get(ctx, "Microsoft.PowerPlatform", nil)
		return err == nil && *p.RegistrationState == "Registered"
	})

	// Register the preview feature through the seed's exact URL path.
	pl, err := arm.NewClient("keyhold-e2e", "v0.0.1", owner, e.ARMOptions())
	if err != nil {
		t.Fatal(err)
	}
	featurePath := "/subscriptions/" + sub + "/providers/Microsoft.Features/providers/Microsoft.PowerPlatform/features/enterprisePoliciesPreview"
	var feature struct {
		Name       string `json:"name"`
		Properties struct {
			State string `json:"state"`
		} `json:"properties"`
	}
	rawARM(t, pl, "POST", featurePath+"/register?api-version=2014-08-01-preview", &feature)
	if feature.Name != "Microsoft.PowerPlatform/enterprisePoliciesPreview" || feature.Properties.State != "Registering" {
		t.Fatalf("feature after register = %+v", feature)
	}
	waitFor(t, "feature registered", func() bool {
		rawARM(t, pl, "GET", featurePath+"?api-version=2014-08-01-preview", &feature)
		return feature.Properties.State == "Registered"
	})

	// A Power Platform administrator gets Reader on the group.
	const ppPassword = "Pp-admin-password-42!"
	ppID, ppUPN := e.CreateUser("ppadmin", ppPassword, keyhold.RolePowerPlatformAdministrator)
	assignments, err := armauthorization.NewRoleAssignmentsClient(sub, owner, e.ARMOptions())
	if err != nil {
		t.Fatal(err)
	}
	scope := *rg.ID
	ra, err := assignments.Create(ctx, scope, uuid.NewString(), armauthorization.RoleAssignmentCreateParameters{
		Properties: &armauthorization.RoleAssignmentProperties{
			RoleDefinitionID: to.Ptr("/subscriptions/" + sub + "/providers/Microsoft.Authorization/roleDefinitions/" + readerRoleID),
			PrincipalID:      to.Ptr(ppID),
			PrincipalType:    to.Ptr(armauthorization.PrincipalTypeUser),
		},
	}, nil)
	if err != nil {
		t.Fatalf("assign Reader: %v", err)
	}
	if !strings.EqualFold(*ra.Properties.Scope, scope) {
		t.Fatalf("assignment scope = %s, want %s", *ra.Properties.Scope, scope)
	}

	// The administrator reads the group and is refused when writing to it.
	pp := e.User(ppUPN, ppPassword)
	ppGroups, err := armresources.NewResourceGroupsClient(sub, pp, e.ARMOptions())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ppGroups.Get(ctx, "rg-contoso-cmk", nil); err != nil {
		t.Fatalf("Reader cannot read the group: %v", err)
	}
	_, err = ppGroups.CreateOrUpdate(ctx, "rg-contoso-cmk", armresources.ResourceGroup{Location: to.Ptr("westus"), Tags: map[string]*string{"x": to.Ptr("y")}}, nil)
	wantAzureError(t, err, http.StatusForbidden, "AuthorizationFailed")
	_, err = ppGroups.CreateOrUpdate(ctx, "rg-other", armresources.ResourceGroup{Location: to.Ptr("westus")}, nil)
	wantAzureError(t, err, http.StatusForbidden, "AuthorizationFailed")
	if _, err := ppGroups.Get(ctx, "rg-other", nil); err == nil {
		t.Fatal("a group that was refused exists")
	}

	// Restart: tenants, principals, groups, assignments and the audit chain survive.
	e.Stop()
	e2 := start(t, e.Dir)
	if e2.Boot.TenantID != e.Boot.TenantID || e2.Boot.SubscriptionID != sub {
		t.Fatal("restart changed the tenant or subscription")
	}
	ppGroups2, _ := armresources.NewResourceGroupsClient(sub, e2.User(ppUPN, ppPassword), e2.ARMOptions())
	if _, err := ppGroups2.Get(ctx, "rg-contoso-cmk", nil); err != nil {
		t.Fatalf("after restart the Reader cannot read the group: %v", err)
	}
	assignments2, _ := armauthorization.NewRoleAssignmentsClient(sub, e2.ServicePrincipal(), e2.ARMOptions())
	found := false
	pager := assignments2.NewListForScopePager(scope, &armauthorization.RoleAssignmentsClientListForScopeOptions{Filter: to.Ptr("atScope()")})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range page.Value {
			found = found || *a.Properties.PrincipalID == ppID
		}
	}
	if !found {
		t.Fatal("after restart the Reader assignment is gone")
	}
	ga := e2.Token(e2.User(e2.Boot.AdminUsername, e2.Boot.AdminPassword), identity.AudienceManagement)
	var verify struct {
		Verified bool  `json:"verified"`
		Records  int64 `json:"records"`
	}
	if resp, b := e2.Do("GET", "/keyhold/v1/audit/verify", ga, nil, &verify); resp.StatusCode != 200 || !verify.Verified || verify.Records < 5 {
		t.Fatalf("audit verify after restart: %d %s", resp.StatusCode, b)
	}
	var records struct {
		Value []keyhold.AuditRecord `json:"value"`
	}
	e2.Do("GET", "/keyhold/v1/audit?principalId="+ppID, ga, nil, &records)
	refused := 0
	for _, r := range records.Value {
		if r.Status == http.StatusForbidden && r.Action == "Microsoft.Resources/subscriptions/resourceGroups/write" {
			refused++
		}
	}
	if refused != 2 {
		t.Fatalf("audit shows %d refused group writes by the Reader, want 2: %+v", refused, records.Value)
	}

	// No secret reached a log line.
	for _, logs := range []string{e.Logs.String(), e2.Logs.String()} {
		for _, secret := range []string{e.Boot.AdminPassword, e.Boot.ClientSecret, ppPassword} {
			if strings.Contains(logs, secret) {
				t.Fatal("a secret appears in the server log")
			}
		}
	}
}

// TestEveryRouteRefusesBadTokens sends requests with no token, an expired
// token, a token signed by another key and a token for another audience to
// every authenticated surface, and expects 401 each time.
func TestEveryRouteRefusesBadTokens(t *testing.T) {
	e := start(t, "")
	sub := e.Boot.SubscriptionID
	sp := e.ServicePrincipal()
	mgmt := e.Token(sp, identity.AudienceManagement)
	graph := e.Token(sp, identity.AudienceGraph)

	// An expired token: issued by the server itself, two hours in the past.
	p, err := e.Server.Identity().Principal(context.Background(), e.Boot.TenantID, e.Server.Bootstrap().ServicePrincipalID)
	if err != nil {
		t.Fatal(err)
	}
	e.Clock.Shift(-2 * time.Hour)
	expired, _, err := e.Server.Identity().IssueToken(context.Background(), p, identity.AudienceManagement)
	e.Clock.Reset()
	if err != nil {
		t.Fatal(err)
	}
	forged := forge(t, mgmt)

	routes := []struct {
		method, path, audience string
	}{
		{"GET", "/subscriptions?api-version=2022-12-01", identity.AudienceManagement},
		{"GET", "/subscriptions/" + sub + "?api-version=2022-12-01", identity.AudienceManagement},
		{"PUT", "/subscriptions/" + sub + "/resourcegroups/rg1?api-version=2021-04-01", identity.AudienceManagement},
		{"GET", "/subscriptions/" + sub + "/providers?api-version=2021-04-01", identity.AudienceManagement},
		{"POST", "/subscriptions/" + sub + "/providers/Microsoft.PowerPlatform/register?api-version=2021-04-01", identity.AudienceManagement},
		{"POST", "/subscriptions/" + sub + "/providers/Microsoft.Features/providers/Microsoft.PowerPlatform/features/enterprisePoliciesPreview/register?api-version=2014-08-01-preview", identity.AudienceManagement},
		{"GET", "/subscriptions/" + sub + "/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01", identity.AudienceManagement},
		{"GET", "/subscriptions/" + sub + "/providers/Microsoft.Authorization/roleDefinitions?api-version=2022-04-01", identity.AudienceManagement},
		{"GET", "/subscriptions/" + sub + "/resources?api-version=2021-04-01", identity.AudienceManagement},
		{"GET", "/providers/Microsoft.PowerPlatform?api-version=2021-04-01", identity.AudienceManagement},
		{"GET", "/tenants?api-version=2022-12-01", identity.AudienceManagement},
		{"GET", "/keyhold/v1/audit", identity.AudienceManagement},
		{"GET", "/keyhold/v1/audit/verify", identity.AudienceManagement},
		{"GET", "/v1.0/users", identity.AudienceGraph},
		{"POST", "/v1.0/users", identity.AudienceGraph},
		{"GET", "/v1.0/me", identity.AudienceGraph},
	}
	for _, rt := range routes {
		other := graph
		if rt.audience == identity.AudienceGraph {
			other = mgmt
		}
		for name, tok := range map[string]string{"no token": "", "expired": expired, "other key": forged, "other audience": other, "garbage": "not.a.jwt"} {
			body := any(nil)
			if rt.method != "GET" {
				body = map[string]any{"location": "westus"}
			}
			resp, b := e.Do(rt.method, rt.path, tok, body, nil)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s with %s: status %d, want 401: %s", rt.method, rt.path, name, resp.StatusCode, b)
				continue
			}
			if resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s with %s: no WWW-Authenticate", rt.method, rt.path, name)
			}
			var ae struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			if json.Unmarshal(b, &ae) != nil || ae.Error.Code == "" || ae.Error.Message == "" {
				t.Errorf("%s %s with %s: body is not an Azure error: %s", rt.method, rt.path, name, b)
			}
		}
		// And the right token passes authentication.
		tok := mgmt
		if rt.audience == identity.AudienceGraph {
			tok = graph
		}
		body := any(nil)
		if rt.method != "GET" {
			body = map[string]any{"location": "westus"}
		}
		if resp, b := e.Do(rt.method, rt.path, tok, body, nil); resp.StatusCode == http.StatusUnauthorized {
			t.Errorf("%s %s with a good token: 401: %s", rt.method, rt.path, b)
		}
	}

	// A wrong client secret gets invalid_client.
	_, err = e.SecretCredential(e.Boot.ClientID, "wrong-secret").GetToken(context.Background(),
		policy.TokenRequestOptions{Scopes: []string{identity.AudienceManagement + "/.default"}})
	if err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("wrong client secret: %v, want invalid_client", err)
	}
}

// forge re-signs a real token's header and claims with a key the server does
// not know.
func forge(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signed := parts[0] + "." + parts[1]
	sig, err := signRS256(key, signed)
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func rawARM(t *testing.T, c *arm.Client, method, path string, out any) {
	t.Helper()
	ctx := context.Background()
	req, err := runtime.NewRequest(ctx, method, runtime.JoinPaths(c.Endpoint(), path))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Pipeline().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if !runtime.HasStatusCode(resp, http.StatusOK) {
		t.Fatalf("%s %s: %v", method, path, runtime.NewResponseError(resp))
	}
	if err := runtime.UnmarshalAsJSON(resp, out); err != nil {
		t.Fatal(err)
	}
}

func wantAzureError(t *testing.T, err error, status int, code string) {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want an Azure %d %s", err, status, code)
	}
	if re.StatusCode != status || re.ErrorCode != code {
		t.Fatalf("got %d %s, want %d %s", re.StatusCode, re.ErrorCode, status, code)
	}
}

// waitFor polls cond until it holds. The bound only keeps a broken server
// from hanging the run; it says nothing about speed (benchmarks do that), so
// it is generous for a loaded CI machine.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitForUpTo(t, time.Minute, what, cond)
}

func waitForUpTo(t *testing.T, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
